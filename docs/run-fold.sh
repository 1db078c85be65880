#!/usr/bin/env bash
# docs/run-fold.sh NAME C5 C6 P1 P2 EXCLUDE VAL: one model-card experiment row (session 18):
# teacher from step 0 with config P1 on corpus C5, second phase P2 (--init),
# distillation (docs/distill-v16.json) on corpus C6, f16, anchored jawOpen
# calibration fitted without EXCLUDE (a pair or `none`), eval on VAL with the
# teacher and of the uncalibrated student. B, RUNS, EVALS override the binary
# and output folders; D the distillation config. P1 `-` skips phase 1 and
# starts phase 2 from the teacher INIT (a fine-tune of an existing teacher,
# session 19). Each stage resumes or is skipped once done.
set -euo pipefail
N=$1; C5=$2; C6=$3; P1=$4; P2=$5; EXC=$6; VAL=$7
B=${B:-target/release/talking-head}
cd "$(dirname "$0")/.."   # relative paths are from the repository root
R=${RUNS:-runs}/$N; mkdir -p $R
T="--threads 1"
I=$R/p1.safetensors
if [ "$P1" = - ]; then I=${INIT:?P1 - needs INIT}; else
[ -f $R/p1.done ] || { $B train --corpus $C5 --out $I --config $P1 $T --resume; touch $R/p1.done; }
fi
[ -f $R/p2.done ] || { $B train --corpus $C5 --out $R/teacher.safetensors --config $P2 --init $I $T --resume; touch $R/p2.done; }
[ -f $R/d.done ] || { $B distill --teacher $R/teacher.safetensors --corpus $C6 --out $R/student.safetensors --config ${D:-docs/distill-v16.json} $T; touch $R/d.done; }
$B convert $R/student.safetensors $R/s16.safetensors --f16
$B calibrate --model $R/s16.safetensors --out $R/default.safetensors --method linear-anchored --channels jawOpen --exclude $EXC
$B eval --model $R/default.safetensors --teacher $R/teacher.safetensors --out ${EVALS:-eval}/$N --facegood-val $VAL
$B eval --model $R/s16.safetensors --out ${EVALS:-eval}/$N-uncal --facegood-val $VAL
echo DONE
