#!/usr/bin/env bash
# Mutation testing of the modules that decide security outcomes (not part of `cargo test`).
#
# cargo-mutants changes one line at a time (a condition to `true`, `<` to `<=`, a body to
# `()`/`Default`) and runs the tests; a "missed" mutant is a wrong line that every test lets
# through. Each file is tested with the unit tests and the integration tests that exercise
# it (a whole `cargo test` per mutant would take hours on 2 cores).
#
# Usage: scripts/mutants.sh [FILE...]   (default: every file below)
#        MUTANTS_JOBS=2 scripts/mutants.sh src/session.rs
# Output: mutants.out/ (cargo-mutants' own report); a summary line per file at the end.
#
# Last result (2026-12-01, commit after "Revocation wins", unit + named integration tests):
#   see the closing note of the trust issue and mutants.out/ for the survivors; equivalent
#   mutants are explained next to the code they touch (e.g. `plausible_token`).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$VERSION"; then
  cargo install --locked cargo-mutants --version "$VERSION"
fi

# file -> integration-test name filters (space-separated) run with the unit tests.
# file -> test name filters (space-separated): its own unit tests' module path and the
# integration-test modules that exercise it (a filter applies to both test binaries).
declare -A FILTERS=(
  [src/session.rs]="session:: revocation linking_and_verify tokens:: admin_cli"
  [src/tokens/refresh.rs]="tokens::refresh revocation tokens::"
  [src/tokens/access.rs]="bound_tokens provider_tokens"
  [src/tokens/keys.rs]="tokens::keys tokens:: bound_tokens"
  [src/config/origin.rs]="config:: callback_url"
  [src/flow.rs]="flow signin_dev linking_and_verify presets"
  [src/identity.rs]="identity linking_and_verify presets admin_cli"
  [src/provider/oidc.rs]="provider:: flow_refusals oidc_provider presets"
  [src/web/introspect.rs]="introspect bound_tokens"
  [src/web/redirect.rs]="redirect callback_url bound_tokens"
)

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=("${!FILTERS[@]}")
fi

summary=()
for file in "${files[@]}"; do
  filters=${FILTERS[$file]:-}
  out="mutants.out/$(echo "$file" | tr '/' '_')"
  mkdir -p "$out"
    args=(--file "$file" --output "$out" --jobs "${MUTANTS_JOBS:-1}" --timeout 300
    -- --lib --test it)
  if [ -n "$filters" ]; then
    # shellcheck disable=SC2206
    args+=(-- $filters)
  fi
  cargo mutants "${args[@]}" || true
  count() { if [ -f "$out/mutants.out/$1.txt" ]; then wc -l < "$out/mutants.out/$1.txt"; else echo 0; fi; }
  caught=$(count caught)
  missed=$(count missed)
  timeout=$(count timeout)
  summary+=("$file: $caught caught, $missed missed, $timeout timed out")
done
printf '%s\n' "${summary[@]}"
