#!/usr/bin/env bash
# Command-line misuse of the tools, as users and scripts commit it: every mistake must get one clear
# "error: ..." line (never a library's raw text) and the documented exit status: 2 for a usage error
# (detectable from the command line alone), 1 for a runtime failure (files, permissions, I/O), 1 at
# the end when infer/eval skipped some inputs, 128 + signal for an interrupted training run.
# Every case runs to the end and the failures are counted, so one run shows everything broken.
#
# Not tested here: a genuinely full disk (mounting a small tmpfs needs privileges CI does not have;
# a write failure is simulated with RLIMIT_FSIZE instead, which fails write() the same way), and,
# when running as root, everything that relies on permission bits (root ignores them; those cases
# print SKIP rather than pass).
set -u
export LC_ALL=C  # byte-wise grep on binary checkpoints; untranslated system messages
TOOLS=$(realpath "$1")
WORK=$(mktemp -d)
trap 'chmod -R u+rwx "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
failed=0
passed=0
fail() {
  echo "FAIL: $*"
  failed=$((failed + 1))
}
# Library texts that must never reach a user: the tools' own messages say what went wrong instead.
RAW='filesystem error|json\.exception|bad_alloc|basic_string|terminate called'

# expect STATUS PATTERN COMMAND...: the command must exit with STATUS and print an error line
# matching the extended regex PATTERN on stderr, and no raw library text. Its stdout is kept in
# $WORK/out, its stderr in $WORK/err.
expect() {
  local want=$1 pattern=$2
  shift 2
  timeout 120 "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$?
  local what="${*:1:6}"
  what=${what//$WORK/\$WORK}
  if [ "$rc" -ne "$want" ]; then
    fail "$what: exit status $rc, expected $want; stderr: $(tail -n 3 "$WORK/err")"
  elif ! grep -qE -- "^error: .*($pattern)" "$WORK/err"; then
    fail "$what: no error line matching '$pattern'; stderr: $(tail -n 3 "$WORK/err")"
  elif grep -qE -- "$RAW" "$WORK/err"; then
    fail "$what: raw library text in: $(grep -E -- "$RAW" "$WORK/err" | head -n 1)"
  else
    passed=$((passed + 1))
    return 0
  fi
  return 1
}
ok() {  # a check that passed
  passed=$((passed + 1))
}
ROOT=0
[ "$(id -u)" -eq 0 ] && ROOT=1
skip_as_root() {
  echo "SKIP (running as root, which ignores permission bits): $*"
}

SMALL=(--data shapes --data-dir "$WORK/data" --train-images 24 --batch 4 --units 16)
"$TOOLS/train" "${SMALL[@]}" --out "$WORK/run" --epochs 1 --max-steps 2 >"$WORK/setup.log" 2>&1 \
  || { cat "$WORK/setup.log"; echo "FAIL: could not train the model the cases need"; exit 1; }
CKPT="$WORK/run/checkpoint.h5"
IMG1="$WORK/data/images/test/000001.jpg"
IMG2="$WORK/data/images/test/000002.jpg"

# --- the policy is documented in every tool's --help ---
for tool in train infer eval cache_features; do
  if "$TOOLS/$tool" --help | grep -q "^exit status: 0 success, 1 runtime failure.*2 usage error"; then ok
  else fail "$tool --help does not state the exit statuses"; fi
done
if "$TOOLS/train" --help | grep -q "130 / 143 interrupted by SIGINT / SIGTERM"; then ok
else fail "train --help does not document the interrupted statuses"; fi

# --- usage errors: exit status 2, before any work ---
expect 2 "train: --epochs expects an integer" "$TOOLS/train" --epochs zero
# A flag's value must not be the next flag: no directory named "--seed" may appear.
expect 2 "train: --out needs a value, but is followed by the flag --seed" \
  "$TOOLS/train" --out --seed 3 --data "$WORK/no-such-data"
[ -e "$WORK/--seed" ] && fail "train --out --seed made a directory named --seed"
expect 2 "infer: --model needs a value" "$TOOLS/infer" --model --json "$IMG1"
# ... while a value that starts with a single '-' is still a value (--max-steps -1 is accepted, and
# the next flag is the one refused).
expect 2 "train: --epochs expects an integer" "$TOOLS/train" --max-steps -1 --epochs zero
# Stray arguments are refused, named, in every tool that takes none.
expect 2 "train: unexpected argument 'stray'" "$TOOLS/train" stray --data "$WORK/no-such-data"
expect 2 "train: unexpected argument 'yes'" "$TOOLS/train" --resume yes --data "$WORK/no-such-data"
expect 2 "eval: unexpected argument 'stray'" "$TOOLS/eval" --model "$WORK/no-such.h5" stray
expect 2 "cache_features: unexpected argument 'stray'" \
  "$TOOLS/cache_features" --data "$WORK/no-such-data" --out "$WORK/f.h5" stray
# Flags that do not combine.
expect 2 "do not combine" "$TOOLS/train" --all-pairs --captions-per-image 2
expect 2 "choose --beam or --sample" "$TOOLS/infer" --model "$CKPT" --beam 2 --sample "$IMG1"
expect 2 "eval: --model CKPT is required" "$TOOLS/eval" --data "$WORK/data"

# --- infer: directories without images, and bad entries among good ones ---
mkdir -p "$WORK/empty" "$WORK/pngs" "$WORK/mixed"
expect 1 "$WORK/empty: no images found \(infer reads JPEG files" "$TOOLS/infer" --model "$CKPT" "$WORK/empty"
printf 'x' >"$WORK/pngs/a.png"
printf 'x' >"$WORK/pngs/b.PNG"
expect 1 "$WORK/pngs: no images found \(infer reads JPEG files, \*\.jpg and \*\.jpeg; 2 other entries ignored\)" \
  "$TOOLS/infer" --model "$CKPT" "$WORK/pngs"
cp "$IMG1" "$WORK/mixed/a.jpg"
cp "$IMG2" "$WORK/mixed/c.jpg"
ln -s b.jpg "$WORK/mixed/b.jpg"                # a symlink loop, between the two good images
ln -s "$WORK/nowhere.jpg" "$WORK/mixed/d.jpg"  # a dangling symlink, after them
if expect 1 "mixed/b\.jpg: cannot examine \(Too many levels of symbolic links\)" \
  "$TOOLS/infer" --model "$CKPT" "$WORK/mixed"; then
  grep -q "mixed/a.jpg" "$WORK/out" && grep -q "mixed/c.jpg" "$WORK/out" \
    || fail "infer: the good images beside a symlink loop were not captioned: $(cat "$WORK/out")"
  grep -q "^error: .*mixed/d.jpg" "$WORK/err" || fail "infer: no error line for a dangling symlink"
fi
if [ $ROOT -eq 1 ]; then
  skip_as_root "infer on an unreadable directory"
else
  mkdir -p "$WORK/locked" && cp "$IMG1" "$WORK/locked/" && chmod 000 "$WORK/locked"
  expect 1 "locked: cannot read the directory \(Permission denied\)" \
    "$TOOLS/infer" --model "$CKPT" "$WORK/locked" "$IMG1"
  grep -q "000001.jpg" "$WORK/out" || fail "infer: the image after an unreadable directory was not captioned"
fi

# --- output paths: refused with the reason, before any long work ---
printf 'x' >"$WORK/afile"
expect 1 "train: --out $WORK/afile: is a file, not a directory" \
  "$TOOLS/train" --data shapes --data-dir "$WORK/data-new" --train-images 24 --batch 4 --out "$WORK/afile"
[ -e "$WORK/data-new" ] && fail "train generated a dataset before refusing its --out"
expect 1 "train: --out $WORK/afile/run: cannot create \(Not a directory\)" \
  "$TOOLS/train" --data shapes --data-dir "$WORK/data-new" --train-images 24 --batch 4 --out "$WORK/afile/run"
expect 1 "eval: --out /nonexistent-dir-glimpse/x.json: directory /nonexistent-dir-glimpse does not exist" \
  "$TOOLS/eval" --model "$CKPT" --data "$WORK/data" --limit 2 --out /nonexistent-dir-glimpse/x.json
grep -q "captioned" "$WORK/err" && fail "eval captioned images before refusing its --out"
expect 1 "eval: --out $WORK/empty: is a directory" \
  "$TOOLS/eval" --model "$CKPT" --data "$WORK/data" --limit 2 --out "$WORK/empty"
expect 1 "cache_features: --out /nonexistent-dir-glimpse/f.h5: directory /nonexistent-dir-glimpse does not exist" \
  "$TOOLS/cache_features" --data "$WORK/data" --splits test --encoder tiny --out /nonexistent-dir-glimpse/f.h5
if [ $ROOT -eq 1 ]; then
  skip_as_root "train --out and eval --out in a read-only directory"
else
  mkdir -p "$WORK/ro" && chmod 555 "$WORK/ro"
  expect 1 "train: --out $WORK/ro/run: cannot create \(Permission denied\)" \
    "$TOOLS/train" --data shapes --data-dir "$WORK/data-new" --train-images 24 --batch 4 --out "$WORK/ro/run"
  expect 1 "train: --out $WORK/ro: cannot create files there \(Permission denied\)" \
    "$TOOLS/train" --data shapes --data-dir "$WORK/data-new" --train-images 24 --batch 4 --out "$WORK/ro"
  [ -e "$WORK/data-new" ] && fail "train generated a dataset before refusing a read-only --out"
  expect 1 "eval: --out $WORK/ro/x.json: cannot create files in $WORK/ro \(Permission denied\)" \
    "$TOOLS/eval" --model "$CKPT" --data "$WORK/data" --limit 2 --out "$WORK/ro/x.json"
fi

# --- eval --out: written whole or not at all ---
mkdir -p "$WORK/scores"
if "$TOOLS/eval" --model "$CKPT" --data "$WORK/data" --limit 16 --out "$WORK/scores/s.json" >/dev/null 2>&1 \
  && [ "$(ls "$WORK/scores")" = "s.json" ]; then
  ok
  size=$(stat -c %s "$WORK/scores/s.json")
  rm "$WORK/scores/s.json"
  # A write that fails part-way: files may not grow past 1 KiB (SIGXFSZ ignored, so write() fails
  # with EFBIG, as it fails with ENOSPC on a full disk). Needs a scores file larger than that.
  [ "$size" -gt 1024 ] || fail "the scores file ($size bytes) is too small to test a failing write"
  expect 1 "eval: $WORK/scores/s.json: write failed \(File too large\)" \
    bash -c 'trap "" XFSZ; ulimit -f 1; exec "$@"' _ \
    "$TOOLS/eval" --model "$CKPT" --data "$WORK/data" --limit 16 --out "$WORK/scores/s.json"
  [ -z "$(ls "$WORK/scores")" ] || fail "a failed eval --out left files behind: $(ls "$WORK/scores")"
else
  fail "eval --out did not write exactly the scores file: $(ls "$WORK/scores")"
fi

# --- checkpoints with a damaged model_config ---
# with_config SRC DST SED: copies checkpoint SRC to DST with its model_config text rewritten by the
# sed expression. The checkpoint keeps model_config as a variable-length HDF5 string attribute: its
# bytes sit as plain text in a global heap collection, which has no checksum, so overwriting them in
# place with a text of the same length (padded with spaces, which JSON ignores) leaves a readable
# file. No h5py needed; if the writer ever stores the text otherwise, the search fails loudly here.
CONFIG_TEXT='{"decoder":[^}]*}'  # (keys are written sorted: "decoder" comes first)
with_config() {
  local src=$1 dst=$2 expr=$3 old new offset count
  count=$(grep -a -o "$CONFIG_TEXT" "$src" | wc -l)
  if [ "$count" -ne 1 ]; then
    fail "found $count model_config texts in $src, expected 1"
    return 1
  fi
  old=$(grep -a -o "$CONFIG_TEXT" "$src")
  offset=$(grep -a -b -o "$CONFIG_TEXT" "$src" | cut -d: -f1)
  new=$(printf '%s' "$old" | sed -e "$expr")
  if [ ${#new} -gt ${#old} ] || [ "$new" = "$old" ]; then
    fail "cannot rewrite model_config with '$expr': $old"
    return 1
  fi
  cp "$src" "$dst"
  printf "%-${#old}s" "$new" | dd of="$dst" bs=1 seek="$offset" conv=notrunc status=none
}
# "ff_dim" is optional (0 is its default): dropping it makes room for longer values.
if with_config "$CKPT" "$WORK/units.h5" 's/"ff_dim":0,//; s/"units":16/"units":100000/'; then
  expect 1 "checkpoint $WORK/units.h5: model_config: units must be an integer in \[1, 65536\], got 100000" \
    "$TOOLS/infer" --model "$WORK/units.h5" "$IMG1"
fi
if with_config "$CKPT" "$WORK/string.h5" 's/"ff_dim":0,//; s/"units":16/"units":"16"/'; then
  expect 1 "model_config: units must be an integer in \[1, 65536\], got \"16\"" \
    "$TOOLS/infer" --model "$WORK/string.h5" "$IMG1"
fi
if with_config "$CKPT" "$WORK/missing.h5" 's/"units":16,//'; then
  expect 1 "checkpoint $WORK/missing.h5: model_config: missing key \"units\"" \
    "$TOOLS/infer" --model "$WORK/missing.h5" "$IMG1"
fi
if with_config "$CKPT" "$WORK/decoder.h5" 's/"ff_dim":0,//; s/"decoder":"gru"/"decoder":"lstm"/'; then
  expect 1 "model_config: decoder must be one of gru \| transformer, got \"lstm\"" \
    "$TOOLS/infer" --model "$WORK/decoder.h5" "$IMG1"
fi
if with_config "$CKPT" "$WORK/notjson.h5" 's/.*/not json/'; then
  expect 1 "checkpoint $WORK/notjson.h5: model_config is not valid JSON" \
    "$TOOLS/infer" --model "$WORK/notjson.h5" "$IMG1"
fi
# A vocabulary that does not match the output layer: refused at load time, not on every image.
words=$(grep -a -o "$CONFIG_TEXT" "$CKPT" | grep -o '"vocab_size":[0-9]*' | cut -d: -f2)
if with_config "$CKPT" "$WORK/vocab.h5" 's/"ff_dim":0,//; s/"vocab_size":\([0-9]*\)/"vocab_size":1\1/'; then
  expect 1 "checkpoint $WORK/vocab.h5: vocabulary has $words words but the model's vocab_size is 1$words" \
    "$TOOLS/infer" --model "$WORK/vocab.h5" "$IMG1"
fi
# train --resume checks the checkpoint before generating a dataset.
mkdir -p "$WORK/bad_resume"
if [ -f "$WORK/units.h5" ]; then
  cp "$WORK/units.h5" "$WORK/bad_resume/checkpoint.h5"
  expect 1 "checkpoint $WORK/bad_resume/checkpoint.h5: model_config: units must be an integer" \
    "$TOOLS/train" --resume --out "$WORK/bad_resume" --data shapes --data-dir "$WORK/data-new" --train-images 24 --batch 4
  [ -e "$WORK/data-new" ] && fail "train --resume generated a dataset before checking the checkpoint"
fi

# --- SIGTERM (docker stop, schedulers) saves a checkpoint as Ctrl-C does, and says which signal ---
"$TOOLS/train" "${SMALL[@]}" --out "$WORK/term" --epochs 1000 --max-steps -1 >"$WORK/term.log" 2>&1 &
pid=$!
# The handler is installed when training starts (train_log.csv appears then); a signal during
# setup simply ends the process, as there is nothing to save yet.
for _ in $(seq 600); do
  [ -s "$WORK/term/train_log.csv" ] && break
  sleep 0.1
done
[ -s "$WORK/term/train_log.csv" ] || fail "train did not start training within 60 s: $(tail -c 300 "$WORK/term.log")"
kill -TERM "$pid"
wait "$pid"
rc=$?
# (A process killed by the signal would also read 143 here: the saved-checkpoint line tells them apart.)
if [ "$rc" -eq 143 ] && grep -q "interrupted: checkpoint saved" "$WORK/term.log"; then
  ok
  if "$TOOLS/infer" --model "$WORK/term/checkpoint.h5" "$IMG1" >"$WORK/out" 2>"$WORK/err"; then ok
  else fail "the checkpoint saved on SIGTERM does not load: $(cat "$WORK/err")"; fi
  if "$TOOLS/train" "${SMALL[@]}" --out "$WORK/term" --epochs 1000 --max-steps 1 --resume >"$WORK/resume.log" 2>&1 \
    && grep -q "resumed from" "$WORK/resume.log"; then ok
  else fail "train --resume after SIGTERM: $(tail -n 3 "$WORK/resume.log")"; fi
else
  fail "train on SIGTERM: exit status $rc (expected 143 and a saved checkpoint); log: $(tail -c 300 "$WORK/term.log")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
