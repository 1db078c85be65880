# One-off check (session 19): largest non-blink, non-gaze channel after the first 0.5 s of each baked noise floor in DIR.
import numpy as np, csv, glob, sys
res={}
for c in sorted(glob.glob(sys.argv[1]+'/*.csv')):
    rows=list(csv.reader(open(c))); names=rows[0][2:]
    d=np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    keep=[i for i,nm in enumerate(names) if not (nm.startswith('EyeBlink') or nm.startswith('EyeLook'))]
    d=d[int(0.5*len(d)/6):][:,keep]
    m=d.max(0); k=m.argmax()
    print(f"{c.split('/')[-1][:-4]:14s} {names[keep[k]]:16s} {m[k]:.3f}")
