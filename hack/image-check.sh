#!/usr/bin/env bash
# Builds the operator image daemonless with buildah (Debian package) from a scratch base, then checks
# what a cluster would run: a static binary, the non-root user, the entrypoint, and nothing else in
# the image. Not part of `make test`: it installs the musl target through rustup and two Debian
# packages, which a CI machine may not allow.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/versions.sh"
target=x86_64-unknown-linux-musl
log() { printf '[image] %s\n' "$*" >&2; }

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
command -v musl-gcc >/dev/null && command -v buildah >/dev/null ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools buildah >/dev/null; }

export CARGO_TARGET_DIR=$KEYSMITH_CACHE/cargo-target-musl
(cd "$root" && cargo build --release --locked --target "$target" -p keysmith --bin keysmith)
bin=$CARGO_TARGET_DIR/$target/release/keysmith
# A scratch image has no loader or libc: the binary must not need one (no PT_INTERP segment).
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then log "$bin is dynamically linked"; exit 1; fi
log "static binary: $(du -h "$bin" | cut -f1), $("$bin" --version)"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/keysmith"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
buildah bud --quiet -f "$here/Containerfile.scratch" -t localhost/keysmith:check "$ctx" >/dev/null
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' localhost/keysmith:check)
entrypoint=$(buildah inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' localhost/keysmith:check)
[ "$user" = "65532:65532" ] || { log "user is $user"; exit 1; }
[ "$entrypoint" = '[/usr/local/bin/keysmith]' ] || { log "entrypoint is $entrypoint"; exit 1; }
container=$(buildah from localhost/keysmith:check)
files=$(find "$(buildah mount "$container")" -type f | wc -l)
buildah umount "$container" >/dev/null
buildah rm "$container" >/dev/null
[ "$files" -eq 1 ] || { log "the image holds $files files; only the binary belongs there"; exit 1; }
log "image localhost/keysmith:check: user $user, entrypoint $entrypoint, $files file(s), $(buildah images --format '{{.Size}}' localhost/keysmith:check)"
