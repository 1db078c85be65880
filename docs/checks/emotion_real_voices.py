# One-off check (session 20): issue 11's emotion figures on real held-out voices, from bake CSVs.
# Bake the 41 LibriSpeech validation-speaker recordings of corpus v5all (split 'val', unaugmented; WAVs made with sox from
# ../shared/data/speech/librispeech) once per emotion: for e in neutral happy sad angry surprised fearful disgusted; do
#   talking-head bake WAVS/*.wav --output $e --emotion $e=1 --no-upper-face; done   then: python3 emotion_real_voices.py .
# Prints per emotion: mean signature change vs neutral, largest off-signature change (eyeLook* excluded), per-clip jawOpen r.
# eval's emotion section now has the same rows on 8 of these speakers (corpus::held_out_real_speech); this is the 41-clip check.
import numpy as np, csv, glob, os, sys
SIG={'happy':['MouthSmileLeft','MouthSmileRight','CheekSquintLeft','CheekSquintRight'],
'sad':['BrowInnerUp','MouthFrownLeft','MouthFrownRight'],
'angry':['BrowDownLeft','BrowDownRight','NoseSneerLeft','NoseSneerRight'],
'surprised':['BrowOuterUpLeft','BrowOuterUpRight','BrowInnerUp','EyeWideLeft','EyeWideRight'],
'fearful':['BrowInnerUp','EyeWideLeft','EyeWideRight','MouthStretchLeft','MouthStretchRight'],
'disgusted':['NoseSneerLeft','NoseSneerRight','MouthUpperUpLeft','MouthUpperUpRight']}
root=sys.argv[1] if len(sys.argv)>1 else '.'
def load(p):
    r=list(csv.reader(open(p))); n=r[0][2:]
    return n,np.array([[float(v) for v in x[2:]] for x in r[1:]])[:, :52]
files=sorted(os.path.basename(f) for f in glob.glob(f'{root}/neutral/*.csv'))
sigs=[]
for e,s in SIG.items():
    ds=[];rs=[]
    for f in files:
        n,a=load(f'{root}/neutral/{f}'); _,b=load(f'{root}/{e}/{f}')
        k=min(len(a),len(b)); ds.append((b[:k]-a[:k]).mean(0))
        j=n.index('JawOpen'); rs.append(np.corrcoef(a[:k,j],b[:k,j])[0,1])
    d=np.mean(ds,0); names=n[:52]
    sc=np.mean([d[names.index(c)] for c in s])
    off=[(abs(d[i]),names[i]) for i in range(52) if names[i] not in s and not names[i].startswith('EyeLook')]
    o=max(off); sigs.append(sc)
    print(f"{e:10s} signature {sc:+.3f}  off {o[0]:.3f} ({o[1]})  jaw r median {np.median(rs):.3f} min {np.min(rs):.3f}")
print(f"mean signature {np.mean(sigs):.3f}, min {np.min(sigs):.3f}; {len(files)} clips")
