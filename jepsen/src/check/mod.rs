//! Checkers: each reads a history and says whether it is explained by a
//! correct system.
