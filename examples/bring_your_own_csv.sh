#!/usr/bin/env bash
# Start from a CSV of videos instead of a crawl: filter, score, label, train, evaluate, predict.
#
#   examples/bring_your_own_csv.sh videos.csv [RUN]
#
# videos.csv needs the columns bvid, title, cover_path, views, likes, coins, favorites, shares, followers and
# on_hot_list; cover_path is absolute or relative to the CSV's folder, which becomes the dataset folder (the stage
# files are written beside the CSV). Settings come from the environment, the study's by default:
#   VIT=B_16_imagenet1k BERT=bert-base-chinese EPOCHS=5 TRAIN_ARGS="--gpus 2"   (e.g. VIT=tiny BERT=tiny to try it)
set -euo pipefail
csv=${1:?usage: $0 videos.csv [RUN]}
data=$(dirname "$csv")
run=${2:-$data/runs/byo}

bilipop filter --data "$data" -i "$csv"
bilipop score --data "$data"
bilipop label --data "$data" ${LABEL_ARGS:-}
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
bilipop train --data "$data" --out "$run" --vit "${VIT:-B_16_imagenet1k}" --bert "${BERT:-bert-base-chinese}" \
  --epochs "${EPOCHS:-5}" ${TRAIN_ARGS:-}
bilipop evaluate "$run"
first_cover=$(python -c "import pandas as pd, sys; t = pd.read_parquet(sys.argv[1]); print(t.cover_path.iloc[0])" \
  "$data/labeled.parquet")
case $first_cover in /*) ;; *) first_cover=$data/$first_cover ;; esac
bilipop predict "$first_cover" "我的新视频标题" --model "$run"
