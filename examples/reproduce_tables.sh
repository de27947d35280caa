#!/usr/bin/env bash
# The study's Table 1 (the late-fusion weight w swept) and Table 2 (VGG for ViT, an RNN for BERT) on a dataset folder.
#
#   examples/reproduce_tables.sh [DATA] [OUT]
#
# DATA holds labeled.parquet and covers/ (the output of crawl → filter → score → label). Settings come from the
# environment, the study's by default: VIT, BERT, VGG (VGG-16 weights: vgg16 or a .pth path), EPOCHS, WEIGHTS and
# TRAIN_ARGS (e.g. "--gpus 4"). For a quick try on a CPU: VIT=tiny BERT=tiny VGG=tiny EPOCHS=1.
set -euo pipefail
data=${1:-data}
out=${2:-runs/tables}
epochs=${EPOCHS:-5}
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
common=(--data "$data" --epochs "$epochs" ${TRAIN_ARGS:-})

# Table 1: one run per weight under $out/table1/w<weight>/, then table1.md/csv beside them.
bilipop train "${common[@]}" --out "$out/table1" --vit "${VIT:-B_16_imagenet1k}" --bert "${BERT:-bert-base-chinese}" \
  --vit-weight "${WEIGHTS:-0.3,0.45,0.6,0.75,0.9,1.0,0}"
bilipop evaluate "$out/table1"

# Table 2: the backbones swapped, at the study's w = 0.75.
bilipop train "${common[@]}" --out "$out/vgg_bert" --vision vgg --vit "${VGG:-vgg16}" --bert "${BERT:-bert-base-chinese}"
bilipop train "${common[@]}" --out "$out/vgg_rnn" --vision vgg --vit "${VGG:-vgg16}" --text rnn \
  --bert "${BERT:-bert-base-chinese}"
for run in vgg_bert vgg_rnn; do
  bilipop evaluate "$out/$run" --json > "$out/$run/eval.json"
  python -c "import json, sys; m = json.load(open(sys.argv[1])); print(sys.argv[2], 'ordinal accuracy', \
round(m['ordinal_accuracy'], 4))" "$out/$run/eval.json" "$run"
done
cat "$out/table1/table1.md"
