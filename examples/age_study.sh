#!/usr/bin/env bash
# Does a video's age confound the study's labels, and does an ordinal loss help? The same filtered data is scored
# with the study's raw counters (--age none) and with age-adjusted ones (--age residual), each labelled into five
# equal classes, each trained with cross-entropy (ce, the study) and with CORN, and the four evaluations are
# printed side by side with their 95% intervals and the best constant of their own test part.
#
#   examples/age_study.sh [DATA] [OUT]
#
# DATA holds filtered.parquet and covers/ (crawl → filter; `bilipop demo` leaves one in bilipop-demo/data).
# Settings from the environment: VIT, BERT (default tiny, for a CPU), EPOCHS (default 5), LABEL_ARGS (default
# --quantiles), TRAIN_ARGS (e.g. "--gpus 4"). The labels differ between the two scorings, so compare each model
# with its own floor: the question is which labels a model can learn from covers and titles, not which is higher.
set -euo pipefail
data=${1:-bilipop-demo/data}
out=${2:-runs/age_study}
mkdir -p "$out"
# shellcheck disable=SC2086  # LABEL_ARGS and TRAIN_ARGS are lists of flags
for age in none residual; do
  bilipop -q score -i "$data/filtered.parquet" -o "$out/scored-$age.parquet" --age "$age" > /dev/null
  bilipop -q label -i "$out/scored-$age.parquet" -o "$out/labeled-$age.parquet" ${LABEL_ARGS:---quantiles} \
    > /dev/null
  for loss in ce corn; do
    rm -rf "${out:?}/$age-$loss"
    bilipop -q train -i "$out/labeled-$age.parquet" --data "$data" --out "$out/$age-$loss" --loss "$loss" \
      --vit "${VIT:-tiny}" --bert "${BERT:-tiny}" --epochs "${EPOCHS:-5}" ${TRAIN_ARGS:-} > /dev/null
    bilipop -q evaluate "$out/$age-$loss" --json > "$out/$age-$loss.json"
  done
done
python3 - "$out" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
print(f"{'labels':<13} {'loss':<5} {'ordinal accuracy (95% CI)':<27} {'best constant':<14} {'beats it':<9} "
      f"{'QWK':>6}")
for age in ("none", "residual"):
    for loss in ("ce", "corn"):
        m = json.loads((out / f"{age}-{loss}.json").read_text())
        lo, hi = m["ci"]["ordinal_accuracy"]
        shown = f"{m['ordinal_accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"
        floor = m["baselines"]["best_constant"]["ordinal_accuracy"]
        beats = m["beats_best_constant"]
        verdict = f"{'yes' if beats['confident'] else 'no'} {beats['difference']:+.3f}"
        qwk = m.get("qwk")
        print(f"{'age ' + age:<13} {loss:<5} {shown:<27} {floor:<14.3f} {verdict:<9} "
              f"{'-' if qwk is None else f'{qwk:.3f}':>6}")
PY
