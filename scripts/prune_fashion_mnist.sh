#!/bin/bash
# The pruning table of docs/deploy.md: a Fashion-MNIST subset, resnet8_cifar and mobilenetv2_050
# trained 3 epochs, channel-pruned at 30/50/70%, evaluated, benchmarked at batch 1, fine-tuned 1 epoch.
# Usage: scripts/prune_fashion_mnist.sh (run from the repository root; OUT, KESTREL, FASHION_MNIST override).
# Print the table: the metrics.json and bench_*.json files under $OUT.
set -x
export FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
K=${KESTREL:-$(pwd)/target/release/kestrel}
OUT=${OUT:-/tmp/prune-fm}; mkdir -p $OUT
cd $OUT
python3 - <<'PY'
import gzip, struct, os
src=os.environ.get('FASHION_MNIST', '/usr/share/datasets/fashion-mnist'); dst='fm'
os.makedirs(dst, exist_ok=True)
def sub(name, n):
    with gzip.open(f'{src}/{name}') as f: data=f.read()
    magic=struct.unpack('>I', data[:4])[0]; ndim=magic & 0xff
    dims=list(struct.unpack('>'+'I'*ndim, data[4:4+4*ndim])); per=1
    for d in dims[1:]: per*=d
    head=struct.pack('>I', magic)+struct.pack('>'+'I'*ndim, n, *dims[1:])
    body=data[4+4*ndim:4+4*ndim+n*per]
    with gzip.open(f'{dst}/{name}','wb') as f: f.write(head+body)
sub('train-images-idx3-ubyte.gz', 6000); sub('train-labels-idx1-ubyte.gz', 6000)
sub('t10k-images-idx3-ubyte.gz', 2000); sub('t10k-labels-idx1-ubyte.gz', 2000)
PY
for M in resnet8_cifar mobilenetv2_050; do
  nice -n 10 $K train --data fm --model $M --img-size 28 --epochs 3 --batch-size 64 --lr 3e-3 --quiet --out base_$M > base_$M.log 2>&1
  nice -n 10 $K bench --checkpoint base_$M --train-batch 0 --batch 1 --runs 20 --json bench_base_$M.json > bench_base_$M.log 2>&1
  for A in 0.3 0.5 0.7; do
    nice -n 10 $K prune --checkpoint base_$M --method channel --amount $A --output p_${M}_$A > p_${M}_$A.log 2>&1
    nice -n 10 $K eval --checkpoint p_${M}_$A --out e_${M}_$A > e_${M}_$A.log 2>&1
    nice -n 10 $K bench --checkpoint p_${M}_$A --train-batch 0 --batch 1 --runs 20 --json bench_${M}_$A.json > bench_${M}_$A.log 2>&1
    nice -n 10 $K train --init-from p_${M}_$A --data fm --epochs 1 --batch-size 64 --lr 1e-3 --warmup-epochs 0 --quiet --out f_${M}_$A > f_${M}_$A.log 2>&1
  done
done
echo DONE
