#!/usr/bin/env bash
# The GPU suite of docs/benchmarks.md, XLA vs PyTorch on the same GPU, in four parts that each fit
# a 10-minute slot (every suite has its own time limit, so one that fails or hangs costs only itself):
#
#     bash bench/gpu.sh OUTDIR 1    # the paper's claim (fp32, bf16), acceptance inference (fp32, bf16), peak
#     bash bench/gpu.sh OUTDIR 2    # the inference suite (fp32, bf16)
#     bash bench/gpu.sh OUTDIR 3    # train steps (fp32)
#     bash bench/gpu.sh OUTDIR 4    # the scaling table and plot
#     bash bench/gpu.sh OUTDIR 5    # what each paper run costs: Chikusei (memory, fp32 and bf16 steps)
#     bash bench/gpu.sh OUTDIR 6    # the same for Houston 2018 and Pavia Centre
#
# Run from the repository root with lkca_jax's requirements installed (ml_collections too).
# Tables go to OUTDIR/partN.md and the plot to OUTDIR/scaling_gpu.png.
set -u
out=$1
part=$2
mkdir -p "$out"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1  # JAX and PyTorch share the GPU's memory
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log="$out/part$part.md"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
python3 -c "import flax, optax; print('flax', flax.__version__, 'optax', optax.__version__)" | tee -a "$log"

suite() {  # time limit in seconds, then compare.py's arguments
  local limit=$1
  shift
  echo -e "\n### python bench/compare.py $*\n" | tee -a "$log"
  timeout "$limit" python3 bench/compare.py "$@" 2>&1 | grep -v Warning | tee -a "$log"
}

case $part in
  1) suite 100 --suite claim --rounds 5 --iters 10
     suite 100 --suite claim --rounds 5 --iters 10 --dtype bfloat16
     suite 60 --suite acceptance --rounds 5 --iters 20  # the train-step table it starts is part 3's
     suite 60 --suite acceptance --rounds 5 --iters 20 --dtype bfloat16
     suite 40 --suite peak --iters 20
     suite 40 --suite peak --iters 20 --dtype bfloat16 ;;
  2) suite 280 --suite inference --rounds 5 --iters 20
     suite 280 --suite inference --rounds 5 --iters 20 --dtype bfloat16 ;;
  3) suite 400 --suite train --rounds 5 --iters 20 ;;
  4) suite 400 --suite scaling --iters 20 --plots "$out"
     mv "$out/scaling.png" "$out/scaling_gpu.png" ;;
  5|6) datasets=$([ "$part" = 5 ] && echo chikusei || echo houston,pavia)
     echo -e "\n### python bench/cost.py --datasets $datasets --steps 5 --max-gib 120\n" | tee -a "$log"
     timeout 580 python3 bench/cost.py --datasets "$datasets" --steps 5 --max-gib 120 --out "$out/cost.jsonl" \
       2>&1 | grep -v Warning | tee -a "$log" ;;
esac
