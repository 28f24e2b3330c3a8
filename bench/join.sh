#!/usr/bin/env bash
# Joining an idle H.264 camera (issue #12, instant start): time from opening /stream/ID
# to the first frame captured after the join, for this tree's camhub and a baseline
# commit's, in the same run. Builds both (release; the baseline from `git archive` into
# target/join-baseline, its own target dir, so target/release is left alone), then runs
# bench/join.py: GStreamer RTSP peers on 127.0.0.1 with keyframes 2 s and 10 s apart,
# --joins joins per camhub and feed at random points of the GOP. Prints a Markdown table
# and keeps a copy in bench-out/. Every process it starts is stopped by PID.
#
#   bench/join.sh                                   # 640x480, keyframes 2 s and 10 s, 20 joins
#   bench/join.sh --sizes 640x480,1280x720          # (any size rtsp_server.py --size takes)
#   bench/join.sh --baseline REV --joins 10         # another baseline commit
#   bench/join.sh --gap 1-3                         # quick rejoins (see bench/join.py)
#
# The default baseline is the commit before instant start (a viewer waits for the
# camera's next keyframe). About 10 min per size with the defaults on 2 cores, plus the
# builds (the baseline's first build takes several minutes).
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/errtrap.sh"
cd "$(dirname "$0")/.."

# The commit before instant start came in (a viewer waits for the camera's next keyframe);
# HEAD while it is not committed yet.
intro=$(git log --format=%H --reverse -S'struct GopCache' -- src/source/rtsp.rs | head -n1)
baseline=${intro:+$intro^}
baseline=${baseline:-HEAD}
args=()
while (($#)); do
  case $1 in
    -h | --help)
      sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
      /usr/bin/python3 bench/join.py --help
      exit 0
      ;;
    --baseline)
      [[ $# -ge 2 ]] || { echo "join.sh: --baseline needs a commit" >&2; exit 2; }
      baseline=$2
      shift 2
      ;;
    --baseline=*) baseline=${1#--baseline=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

target=${CARGO_TARGET_DIR:-target}
echo "join.sh: building camhub (release) from the working tree..." >&2
cargo build --release --bin camhub >&2

base_rev=$(git rev-parse --short "$baseline^{commit}")
base_dir="$target/join-baseline/$base_rev"
if [[ ! -x $base_dir/camhub ]]; then
  echo "join.sh: building the baseline $base_rev (release)..." >&2
  rm -rf "$base_dir/src"
  mkdir -p "$base_dir/src"
  git archive "$base_rev" | tar -x -C "$base_dir/src"
  CARGO_TARGET_DIR="$target/join-baseline/target" \
    cargo build --release --locked --bin camhub --manifest-path "$base_dir/src/Cargo.toml" >&2
  cp "$target/join-baseline/target/release/camhub" "$base_dir/camhub"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Frozen copies: a rebuild during the run cannot mix versions.
cp "$target/release/camhub" "$tmp/camhub-new"
cp "$base_dir/camhub" "$tmp/camhub-base"

mkdir -p bench-out
out="bench-out/join-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  printf -- '- camhub: working tree at %s (%s); baseline: %s\n' \
    "$(git rev-parse --short HEAD)" \
    "$(git diff --quiet HEAD -- src Cargo.toml && echo clean || echo with local changes)" \
    "$base_rev"
  printf -- '- machine: %s, %s CPUs, load average at start %s\n\n' \
    "$(uname -m)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/python3 bench/join.py --bin "instant start=$tmp/camhub-new" \
    --bin "baseline $base_rev=$tmp/camhub-base" ${args[@]+"${args[@]}"}
} | tee "$out"
echo "join.sh: table saved to $out" >&2
