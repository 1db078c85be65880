# One-off check (session 19): lips in the pauses of real recordings. WAVs (sox of the LibriSpeech validation speakers' flac,
# corpus v5all split 'val', unaugmented) in the working directory; CSVs baked with --no-upper-face into DIR (argv[1]).
# Pause = frames within 6 dB of the clip's 5th-percentile level, in runs of >= 9 frames (30 fps), 3 frames trimmed each side.
import numpy as np, wave, csv, sys, glob, os
m=sys.argv[1]
tot=[];mx=[];nfr=0
for w in sorted(glob.glob('*.wav')):
    c=f'{m}/{w[:-4]}.csv'
    if not os.path.exists(c): continue
    f=wave.open(w); x=np.frombuffer(f.readframes(f.getnframes()),dtype=np.int16)/32768.0
    rows=list(csv.reader(open(c))); names=rows[0][2:]
    d=np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    spf=16000//30; n=min(len(d), len(x)//spf)
    lev=np.array([10*np.log10(np.mean(x[i*spf:(i+1)*spf]**2)+1e-12) for i in range(n)])
    thr=np.percentile(lev,5)+6; q=lev<thr
    sel=np.zeros(n,bool); i=0
    while i<n:
        if q[i]:
            j=i
            while j<n and q[j]: j+=1
            if j-i>=9: sel[i+3:j-3]=True
            i=j
        else: i+=1
    if sel.sum()==0: continue
    r=d[:n][sel][:, [names.index('MouthPucker'), names.index('MouthFunnel')]].sum(1)
    tot.append(r.mean()); mx.append(r.max()); nfr+=sel.sum()
print(f"{m}: {len(tot)} clips, {nfr} pause frames; pucker+funnel in pauses: mean {np.mean(tot):.3f}, median of per-clip max {np.median(mx):.3f}, max {np.max(mx):.3f}")
