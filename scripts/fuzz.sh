#!/usr/bin/env bash
# Short fuzzing run of the wire parsers (request head, chunked body, response head), the path
# normalizer, the admin API's JSON inputs, the call record (encode/decode, its JSON line,
# traceparent), server-sent events and the AI gateway's translations, each for $FUZZ_SECS seconds (default 60), from fuzz/seeds/
# Not part of the test suite; run it after touching src/http/.
#   scripts/fuzz.sh            # all targets, 60 s each
#   FUZZ_SECS=600 scripts/fuzz.sh chunked
# Needs cargo-fuzz (installed here if missing). cargo-fuzz needs nightly compiler features; on a
# stable toolchain RUSTC_BOOTSTRAP=1 enables them for this build only.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_head chunked response_head normalize admin_json call_record sse ai_translate ai_inputs)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "== fuzzing $t for ${secs}s"
  cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- -max_total_time="$secs" -max_len=16384
done
