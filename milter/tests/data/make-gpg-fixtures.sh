#!/bin/sh
# Regenerates the GnuPG-made fixtures in this directory (needs gpg, GnuPG 2.2 or later).
# The tests also run gpg themselves when it is installed; these files keep the cross-check
# working on machines without it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
g() { gpg --batch --quiet --no-tty --pinentry-mode loopback --passphrase '' "$@"; }
g --quick-gen-key 'Alice <alice@example.org>' ed25519 cert never
fpr_a=$(gpg --list-keys --with-colons alice@example.org | awk -F: '/^fpr/ {print $10; exit}')
g --quick-add-key "$fpr_a" cv25519 encr never
g --quick-gen-key 'Bob <bob@example.org>' rsa2048 cert never
fpr_b=$(gpg --list-keys --with-colons bob@example.org | awk -F: '/^fpr/ {print $10; exit}')
g --quick-add-key "$fpr_b" rsa2048 encr never
text="Hello from GnuPG: a short chat message."
# Public-key encrypted to two recipients: legacy-format PKESK headers, SEIPD v1 with
# partial body lengths (gpg streams from stdin).
printf '%s\n' "$text" | g --armor --trust-model always --encrypt \
    -r alice@example.org -r bob@example.org > "$here/gpg-pkesk-two-recipients.asc"
# Password encrypted: legacy-format SKESK header.
printf '%s\n' "$text" | gpg --batch --quiet --pinentry-mode loopback --passphrase x \
    --armor --symmetric > "$here/gpg-skesk.asc"
# Larger payload, no compression: several partial body length chunks.
head -c 20000 /dev/zero | tr '\0' 'a' | gpg --batch --quiet --pinentry-mode loopback \
    --passphrase x --compress-level 0 --armor --symmetric > "$here/gpg-skesk-partial.asc"
# With a Version: armor header (allowed inbound only).
printf '%s\n' "$text" | gpg --batch --quiet --pinentry-mode loopback --passphrase x \
    --emit-version --armor --symmetric > "$here/gpg-version-header.asc"
echo "fixtures written to $here"
