//! Storage: one trait, Redis / embedded SQLite / memory backends.
