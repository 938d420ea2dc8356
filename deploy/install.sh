#!/usr/bin/env bash
# Install the daemon for systemd/reconciler.service (`make install` runs this), creating
# exactly the paths the unit uses:
#   $PREFIX/.venv            a venv with reconciler installed (ExecStart=$PREFIX/.venv/bin/reconciler)
#   $PREFIX/README.md        the unit's Documentation=
#   $SYSCONFDIR/config/policy.yaml, $SYSCONFDIR/templates/   RECONCILER_POLICY_PATH and the pod
#                            templates it names (../templates/...), as in the repository
#   $SYSCONFDIR/env          EnvironmentFile= (mode 600, created empty, never overwritten)
#   $UNITDIR/reconciler.service   the unit, its paths rewritten to the ones above
# /var/lib/reconciler (StateDirectory=) is created by systemd itself for the DynamicUser.
#
# Defaults: PREFIX=/opt/reconciler SYSCONFDIR=/etc/reconciler UNITDIR=/etc/systemd/system.
# Override them to install elsewhere (the tests install into a temp dir). Keep them out of
# /home, /root and /tmp for a real service: ProtectHome= and PrivateTmp= hide those from it.
# An existing policy.yaml or template that differs from the repository's is kept (yours may be
# edited); the repository's version is put beside it as <file>.dist.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/opt/reconciler}
SYSCONFDIR=${SYSCONFDIR:-/etc/reconciler}
UNITDIR=${UNITDIR:-/etc/systemd/system}
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off
. rig/heartbeat.sh
HEARTBEAT_PREFIX=install

say() { echo "install: $*"; }

# A config file: installed when missing or unchanged; an edited one is kept, ours as .dist.
install_config() {
  local src=$1 dest=$2
  install -d -m 755 "$(dirname "$dest")"
  if [ -e "$dest" ] && ! cmp -s "$src" "$dest"; then
    install -m 644 "$src" "$dest.dist"
    say "kept your $dest (the repository's version is $dest.dist)"
  else
    install -m 644 "$src" "$dest"
  fi
}

say "venv $PREFIX/.venv with reconciler from $(pwd) (~30 s with a warm pip cache)"
install -d -m 755 "$PREFIX"
if [ ! -x "$PREFIX/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$PREFIX/.venv"
fi
with_heartbeat "installing reconciler into $PREFIX/.venv" \
  "$PREFIX/.venv/bin/pip" install -q --upgrade .
install -m 644 README.md "$PREFIX/README.md"

say "policy and templates in $SYSCONFDIR"
install_config config/policy.yaml "$SYSCONFDIR/config/policy.yaml"
for template in templates/*/*; do
  install_config "$template" "$SYSCONFDIR/$template"
done
if [ ! -e "$SYSCONFDIR/env" ]; then
  install -m 600 /dev/null "$SYSCONFDIR/env"
  say "created an empty $SYSCONFDIR/env: put the endpoints and secrets there (README \"Configuration\")"
fi

say "unit $UNITDIR/reconciler.service"
install -d -m 755 "$UNITDIR"
sed -e "s|/opt/reconciler|$PREFIX|g" -e "s|/etc/reconciler|$SYSCONFDIR|g" \
  systemd/reconciler.service > "$UNITDIR/reconciler.service.tmp"
chmod 644 "$UNITDIR/reconciler.service.tmp"
mv "$UNITDIR/reconciler.service.tmp" "$UNITDIR/reconciler.service"

say "done: $("$PREFIX/.venv/bin/reconciler" --version). Next: edit $SYSCONFDIR/env, then"
say "  systemctl daemon-reload && systemctl enable --now reconciler"
