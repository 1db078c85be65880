# One-off check (session 19; numpy), not a repo tool: 6 s noise floors from numpy's generator (independent of
# the trainer's noise::coloured_noise). Writes the 8 WAVs here; then per model:
#   for f in *.wav; do talking-head bake $f --output M/${f%.wav}.csv --no-upper-face --model MODEL; done; python3 noise_panel_score.py M
import numpy as np, wave
rng=np.random.default_rng(12345)
def col(n,a):
    x=rng.standard_normal(n)
    if a:
        X=np.fft.rfft(x); k=np.arange(len(X)); k[0]=1
        X*=k**(-a/2); X[0]=0; x=np.fft.irfft(X,n)
    return x/np.sqrt(np.mean(x**2))
def w(name,x):
    x=np.clip(x,-1,1); f=wave.open(name,'wb'); f.setnchannels(1); f.setsampwidth(2); f.setframerate(16000)
    f.writeframes((x*32767).astype(np.int16).tobytes()); f.close()
n=16000*6
for nm,a,db in [('white65',0,-65),('white50',0,-50),('white40',0,-40),('pink55',1,-55),('pink45',1,-45),('brown45',2,-45),('brown35',2,-35)]:
    w(nm+'.wav', col(n,a)*10**(db/20))
# hum 60 Hz + pink
t=np.arange(n)/16000
h=sum(a*np.sin(2*np.pi*60*(k+1)*t+k) for k,a in enumerate([1,.5,.35,.25])); h/=np.sqrt(np.mean(h**2))
w('hum60pink50.wav',(col(n,1)+h)*10**(-53/20))
