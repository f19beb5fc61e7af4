//! Sign-in through each preset against a fake of the real provider written from its public
//! documentation (`support/fakes/<name>.rs`, whose own tests check the fake). Every case runs
//! the whole flow through latch with a browser that checks each hop (`support::flow`), and
//! looks at the user latch made. Refusals: the specific code, a 4xx, no session cookie,
//! `/session` is `{}`. Never a 500.
mod apple;
mod discord;
mod entra;
mod facebook;
mod github;
