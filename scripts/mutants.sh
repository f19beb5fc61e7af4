#!/usr/bin/env bash
# Mutation testing of the modules that decide security outcomes (not part of `cargo test`).
#
# cargo-mutants changes one line at a time (a condition to `true`, `<` to `<=`, a body to
# `()`/`Default`) and runs the tests; a "missed" mutant is a wrong line that every test lets
# through. A whole `cargo test` per mutant would take days on 2 cores, so each file runs in
# two passes: first its mutants against the unit tests alone (a rebuild of the library's test
# harness, ~10 s), then `--iterate` re-tests only the survivors against the unit tests plus
# the integration tests that exercise that file (FILTERS below). A mutant is caught if
# either pass caught it.
#
# Usage: scripts/mutants.sh [FILE...]   (default: every file below)
#        MUTANTS_IN_PLACE=1 scripts/mutants.sh src/session.rs
# MUTANTS_IN_PLACE=1 mutates this checkout in place (fast: its own target/ stays warm; use a
# separate `git worktree` you do not edit meanwhile). Without it cargo-mutants works in a
# scratch copy and builds into target/mutants (warm after the first file).
# Output: mutants.out/<file>/mutants.out/ (cargo-mutants' own report); a summary per file.
#
# Last result (2026-12-01, MUTANTS_IN_PLACE=1, both cores shared with other builds and
# benchmarks; 10-25 s a mutant in pass 1, 40-70 s in pass 2). Counts are of viable mutants
# (unviable ones do not build); every survivor was then killed by a new test (confirmed
# with `--re ... --in-place`) or is explained at the code as equivalent.
#   src/config/origin.rs  26 of 26 caught.
#   src/flow.rs           23 of 31 caught; 8 survivors, all since caught or explained:
#                         binding_key x2 (test flow_hijack::another_browsers_pending_flow_...),
#                         printable x3 (caught by fuzz::, which the filter lacked; it is in
#                         error.rs now), has_pending's bound x2 and the state filter's `&&`
#                         (equivalent, explained at the code).
#   src/session.rs        67 of 72 viable caught when stopped in pass 2; every pass-1
#                         survivor now has a unit test (the_store_ttl_is_the_time_left,
#                         a_profile_without_email_is_not_verified, revoke_user_counts_...)
#                         or is explained (plausible_token).
#   src/tokens/refresh.rs 31 of 40 (7 unviable); the 9 survivors (plausible x2, remaining x2,
#                         create's TTL x2, start x2, Lock::release) now caught by unit tests.
#   src/web/redirect.rs   21 of 21 (1 unviable), in pass 1 with its new example tests.
#   src/tokens/access.rs  25 of 25 (2 unviable), in pass 1 with its new unit tests.
#   src/web/introspect.rs 9 of 9: 6 in pass 1, the handler's 3 in pass 2.
#   src/tokens/keys.rs    47 of 48 (9 unviable); check_claims' list `==` now caught.
#   src/web/signin.rs     26 of 33 (1 unviable; 8 in pass 1, 18 in pass 2); sign-out's
#                         `everywhere` x5 now caught (signin_dev::sign_out_ends_every_...),
#                         the cookie guard made false by redis_sessions::sign_out_ends_a_
#                         record_... (now in the filter); the guard made true is equivalent.
#   src/identity.rs       38 of 41 (12 unviable; pass 2 caught none); by_verified_email's
#                         `&&` and link's `!=` now caught; delete's `||` is equivalent.
#   src/error.rs          6 of 6 (3 unviable), in pass 1.
#   src/provider/oidc.rs  69 of 97 in pass 1 (7 unviable; pass 2 not run: the new unit
#                         tests were re-run against the 28 survivors instead); 25 now caught,
#                         3 boundary mutants equivalent (`<=`/`>=` at instants not observable).
#   src/web/extract.rs    17 of 18 (12 unviable); the CSRF cookie's Max-Age now caught
#                         (signin_dev::the_csrf_cookie_lives_a_day).
#   src/server/connections.rs 36 of 49 (44 unviable; 29 in pass 1, 7 in pass 2), 3 timed
#                         out (Activity::now_ms made constant x2, the deadline's `+` made `-`:
#                         the clock stands still, cutoff spins and the tests hang). An earlier
#                         partial run's survivors (the as_str labels x4, the refused count, the
#                         once-a-minute warning) fell in pass 1 to labels_name_the_key_...,
#                         refusals_are_logged_... and the /metrics checks in connections::.
#                         The 10 left (GuardedBody's size_hint and is_end_stream, Watched's
#                         poll_write x2, is_write_vectored x2, poll_flush, poll_shutdown and
#                         poll_read's `&&`/`>` at an EOF) are now caught by unit tests
#                         (a_guarded_body_is_its_body_..., a_watched_stream_passes_...).
#   src/provider/presets/mod.rs 26 of 30 (12 unviable; pass 2 caught none); check_orgs'
#                         default now caught (a_preset_without_organisation_rules_...);
#                         own_keys', settings' and check_server's defaults are equivalent.
# The twelve files after the first three, with the new tests: 406 of 417 viable mutants
# caught (97.4%) and 3 timed out (connections' clock, above); the 8 left are the equivalent
# ones named above.
# The preset files (presets/<id>.rs) are declared inside the `presets!` macro, which
# cargo-mutants does not follow: it lists 0 mutants for each.
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
  [src/tokens/access.rs]="bound_tokens provider_tokens introspect revocation tokens::"
  [src/tokens/keys.rs]="tokens::keys tokens:: bound_tokens"
  [src/config/origin.rs]="config:: callback_url"
  [src/flow.rs]="flow signin_dev linking_and_verify presets flow_hijack flow_refusals fuzz error_redirects"
  [src/identity.rs]="identity linking_and_verify presets admin_cli"
  [src/provider/oidc.rs]="provider:: flow_refusals oidc_provider presets"
  [src/web/introspect.rs]="introspect bound_tokens"
  [src/web/redirect.rs]="redirect callback_url bound_tokens"
  [src/error.rs]="error fuzz flow_refusals routes error_redirects"
  [src/web/signin.rs]="signin flow_hijack flow_refusals nextauth error_redirects sign_out_ends_a_record"
  [src/server/connections.rs]="connections"
  [src/web/extract.rs]="web::extract bound_tokens routes nextauth signin_dev tokens:: flow_hijack"
  [src/provider/presets/mod.rs]="provider::presets presets config::"
)

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  # The files the trust issue named first, then the rest.
  files=(src/config/origin.rs src/flow.rs src/session.rs src/tokens/refresh.rs
    src/web/redirect.rs src/tokens/access.rs src/web/introspect.rs src/tokens/keys.rs
    src/web/signin.rs src/identity.rs src/provider/oidc.rs src/server/connections.rs
    src/error.rs src/web/extract.rs src/provider/presets/mod.rs)
fi

in_place=()
if [ -n "${MUTANTS_IN_PLACE:-}" ]; then
  in_place=(--in-place)
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/mutants}"
fi

summary=()
for file in "${files[@]}"; do
  filters=${FILTERS[$file]:-}
  out="mutants.out/$(echo "$file" | tr '/' '_')"
  mkdir -p "$out"
  common=(--file "$file" --output "$out" --baseline skip --timeout 300 "${in_place[@]}")
  # Pass 1: unit tests only (`-C` reaches the build too, so only the lib's tests are built).
  cargo mutants "${common[@]}" -C --lib || true
  count() { cat "$out/mutants.out/$1.txt" 2>/dev/null | grep -c . || true; }
  # Pass 2 rewrites the report (its previously_caught lists pass 1's unviable mutants too).
  caught1=$(count caught)
  unviable1=$(count unviable)
  # Pass 2: the survivors, with the integration tests that exercise this file.
  args=("${common[@]}" --iterate -C --lib -C --test=it)
  if [ -n "$filters" ]; then
    # shellcheck disable=SC2206
    args+=(-- -- $filters)
  fi
  cargo mutants "${args[@]}" || true
  caught=$((caught1 + $(count caught)))
  summary+=("$file: $caught caught, $(count missed) missed, $(count timeout) timed out, $((unviable1 + $(count unviable))) unviable")
  if [ -s "$out/mutants.out/missed.txt" ]; then
    sed 's/^/    missed: /' "$out/mutants.out/missed.txt"
  fi
done
printf '%s\n' "${summary[@]}"
