#!/usr/bin/env bash
# build-release.sh — build the release binary that install.sh installs, and print its path.
# The one place the release build's flags live: install.sh and the bench (benches/perf)
# both run this script, so the bench measures the binary users get.
#
# On Linux with glibc (x86_64 or aarch64 host) the binary is linked statically: every
# tick, hook and status call is a fresh process, and a static binary starts without the
# dynamic loader (0.84 against 1.17 ms a call; docs/performance.md, "Statically linked
# build"). The flag goes to CARGO_TARGET_<TRIPLE>_RUSTFLAGS with an explicit --target, so
# it reaches the binary only: with crt-static for the host, proc-macro crates (serde's
# derive) cannot be built. Anything else (macOS, musl, ...) gets the normal build. If the
# static build is not possible here (no static libc.a) or fails, the normal build is made
# instead, with a one-line note: never no binary.
#
# Usage: ./build-release.sh [--no-build]
#   Prints the binary's path on stdout; cargo's output and the notes go to stderr.
#   --no-build  build nothing: print the newer of the existing static and normal builds.
# Honours CARGO_TARGET_DIR. Exit status: 0 ok, 1 no binary.
#
# Compatible with bash 3.2 (stock macOS): no arrays, mapfile or ${var,,}.
set -euo pipefail

# Static glibc, position independent (static-pie, the default with crt-static).
STATIC_RUSTFLAGS='-C target-feature=+crt-static'

note() { printf 'build-release.sh: %s\n' "$*" >&2; }

no_build=0
case ${1:-} in
--no-build) no_build=1 ;;
'') ;;
*) note "usage: ./build-release.sh [--no-build]"; exit 2 ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cd "$REPO"
target_dir=${CARGO_TARGET_DIR:-$REPO/target}
case $target_dir in /*) ;; *) target_dir="$REPO/$target_dir" ;; esac
DYNAMIC_BIN="$target_dir/release/metawsm-tick"

host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p') || host=""
static_host=0
case $host in
x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) static_host=1 ;;
esac
STATIC_BIN="$target_dir/$host/release/metawsm-tick"

if [ "$no_build" = 1 ]; then
	if [ "$static_host" = 1 ] && [ -x "$STATIC_BIN" ] &&
		{ [ ! -x "$DYNAMIC_BIN" ] || [ "$STATIC_BIN" -nt "$DYNAMIC_BIN" ]; }; then
		printf '%s\n' "$STATIC_BIN"
	else
		printf '%s\n' "$DYNAMIC_BIN"
	fi
	exit 0
fi

command -v cargo >/dev/null 2>&1 || {
	note "cargo not found: install Rust (https://rustup.rs)"
	exit 1
}

# Why the static build is not tried, if it is not; empty if it is.
skip=""
if [ "$static_host" = 0 ]; then
	skip="none" # not a Linux glibc host: the normal build, nothing to say
elif [ -n "${RUSTFLAGS:-}${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
	skip="RUSTFLAGS is set and would override the per-target flags"
else
	# The linker (cc) names the static libc it would use, or echoes the bare name.
	libc_a=$(cc -print-file-name=libc.a 2>/dev/null) || libc_a=""
	case $libc_a in
	/*) [ -f "$libc_a" ] || libc_a="" ;;
	*) libc_a="" ;;
	esac
	[ -n "$libc_a" ] || skip="no static libc.a (glibc's libc6-dev or glibc-static package)"
fi

if [ -z "$skip" ]; then
	var="CARGO_TARGET_$(printf '%s' "$host" | tr 'abcdefghijklmnopqrstuvwxyz-' 'ABCDEFGHIJKLMNOPQRSTUVWXYZ_')_RUSTFLAGS"
	# Keep the user's own flags for this target, ours after them. (Per-target flags
	# replace build.rustflags / CARGO_BUILD_RUSTFLAGS for this build: cargo uses one
	# source of flags. The user's build.rustflags, if any, apply to the normal build only.)
	flags="${!var:-}"
	flags="${flags:+$flags }$STATIC_RUSTFLAGS"
	note "building statically linked: $var='$flags' cargo build --release --locked --target $host"
	if env "$var=$flags" cargo build --release --locked --target "$host" >&2 && [ -x "$STATIC_BIN" ]; then
		printf '%s\n' "$STATIC_BIN"
		exit 0
	fi
	skip="the static build failed"
fi

if [ "$skip" = none ]; then
	note "building: cargo build --release --locked"
else
	note "not statically linked ($skip); building the normal binary: cargo build --release --locked"
fi
cargo build --release --locked >&2
[ -x "$DYNAMIC_BIN" ] || {
	note "no binary at $DYNAMIC_BIN after the build"
	exit 1
}
printf '%s\n' "$DYNAMIC_BIN"
