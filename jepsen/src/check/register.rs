//! The sequential model the linearizability checker replays: one key's
//! register holding (value, mod_revision), where the server, not the model,
//! picks revisions.
//!
//! A write takes the revision its completion reported; when that is unknown
//! (an `Info` write, or no header) the register records only a lower bound,
//! and the first read or cas that names a revision pins it. Revisions must
//! strictly increase along the register's writes. A guarded delete (on
//! mod_revision, like a cas) makes the key absent again; an absent register
//! forgets the deleted revision, so revisions are checked from 0 again.

use std::fmt;

use crate::history::Op;

/// The current mod_revision, exactly or as a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rev {
    Known(i64),
    /// Written by an operation whose revision we never saw: some integer ≥ this.
    AtLeast(i64),
}

/// One key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Register {
    #[default]
    Absent,
    Present {
        value: u64,
        rev: Rev,
    },
}

/// Why an operation cannot take effect on a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// A read returned another value (or presence) than the register holds.
    Value,
    /// A read returned another mod_revision than the register holds.
    ModRevision,
    /// A successful cas whose expected mod_revision is not the register's.
    Compare,
    /// A write's revision is not above the register's mod_revision.
    NotIncreasing,
    /// Not a register operation.
    NotRegisterOp,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reject::Value => "the read's value differs from the register",
            Reject::ModRevision => "the read's mod_revision differs from the register",
            Reject::Compare => "the cas succeeded but its expected mod_revision is not the register's",
            Reject::NotIncreasing => "the write's revision is not above the register's mod_revision",
            Reject::NotRegisterOp => "not a register operation",
        })
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Register::Absent => f.write_str("absent"),
            Register::Present {
                value,
                rev: Rev::Known(r),
            } => write!(f, "{value} (mod_revision {r})"),
            Register::Present {
                value,
                rev: Rev::AtLeast(r),
            } => write!(f, "{value} (mod_revision ≥ {r}, unobserved)"),
        }
    }
}

impl Register {
    /// The state after `op` took effect, with `revision` the revision its
    /// completion reported (writes and cas only; `None` when unknown).
    pub fn step(self, op: &Op, revision: Option<i64>) -> Result<Register, Reject> {
        match op {
            Op::Read {
                value, mod_revision, ..
            } => self.read(*value, *mod_revision),
            Op::Write { value, .. } => self.write(*value, revision),
            Op::Cas { expect, value, .. } => self.compare(*expect)?.write(*value, revision),
            Op::Delete { expect, .. } => {
                // The delete's revision must rise like a write's.
                self.compare(*expect)?.write(0, revision)?;
                Ok(Register::Absent)
            }
            _ => Err(Reject::NotRegisterOp),
        }
    }

    fn read(self, value: Option<u64>, mod_revision: Option<i64>) -> Result<Register, Reject> {
        match (self, value) {
            (Register::Absent, None) => match mod_revision {
                None | Some(0) => Ok(self),
                Some(_) => Err(Reject::ModRevision),
            },
            (Register::Present { value: held, rev }, Some(v)) if held == v => match (rev, mod_revision) {
                (_, None) => Ok(self),
                (Rev::Known(k), Some(m)) if k == m => Ok(self),
                (Rev::AtLeast(lo), Some(m)) if m >= lo => Ok(Register::Present {
                    value: held,
                    rev: Rev::Known(m),
                }),
                _ => Err(Reject::ModRevision),
            },
            _ => Err(Reject::Value),
        }
    }

    /// The register as seen by a cas that compared equal to `expect`.
    fn compare(self, expect: i64) -> Result<Register, Reject> {
        match self {
            Register::Absent if expect == 0 => Ok(self),
            Register::Present {
                value,
                rev: Rev::Known(k),
            } if k == expect => Ok(Register::Present {
                value,
                rev: Rev::Known(k),
            }),
            Register::Present {
                value,
                rev: Rev::AtLeast(lo),
            } if expect >= lo => Ok(Register::Present {
                value,
                rev: Rev::Known(expect),
            }),
            _ => Err(Reject::Compare),
        }
    }

    fn write(self, value: u64, revision: Option<i64>) -> Result<Register, Reject> {
        // The smallest mod_revision the register may currently have.
        let floor = match self {
            Register::Absent => 0,
            Register::Present {
                rev: Rev::Known(r) | Rev::AtLeast(r),
                ..
            } => r,
        };
        let rev = match revision {
            Some(r) if r > floor => Rev::Known(r),
            Some(_) => return Err(Reject::NotIncreasing),
            None => Rev::AtLeast(floor.saturating_add(1)),
        };
        Ok(Register::Present { value, rev })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testgen::*;

    fn known(value: u64, r: i64) -> Register {
        Register::Present {
            value,
            rev: Rev::Known(r),
        }
    }

    #[test]
    fn reads_see_value_and_mod_revision() {
        let r = Register::Absent;
        assert_eq!(r.step(&read("k", None, None), None), Ok(r));
        assert_eq!(r.step(&read("k", Some(1), None), None), Err(Reject::Value));
        let r = known(1, 5);
        assert_eq!(r.step(&read("k", Some(1), Some(5)), None), Ok(r));
        assert_eq!(r.step(&read("k", Some(1), Some(4)), None), Err(Reject::ModRevision));
        assert_eq!(r.step(&read("k", None, None), None), Err(Reject::Value));
    }

    #[test]
    fn writes_take_the_observed_revision_and_it_must_increase() {
        let r = known(1, 5);
        assert_eq!(r.step(&write("k", 2), Some(9)), Ok(known(2, 9)));
        assert_eq!(r.step(&write("k", 2), Some(5)), Err(Reject::NotIncreasing));
        assert_eq!(r.step(&cas("k", 5, 3), Some(6)), Ok(known(3, 6)));
        assert_eq!(r.step(&cas("k", 4, 3), Some(6)), Err(Reject::Compare));
        assert_eq!(Register::Absent.step(&cas("k", 0, 3), Some(2)), Ok(known(3, 2)));
    }

    #[test]
    fn a_guarded_delete_makes_the_key_absent() {
        let delete = |expect| Op::Delete {
            key: "k".into(),
            expect,
        };
        let r = known(1, 5);
        assert_eq!(r.step(&delete(5), Some(6)), Ok(Register::Absent));
        assert_eq!(r.step(&delete(4), Some(6)), Err(Reject::Compare));
        assert_eq!(r.step(&delete(5), Some(5)), Err(Reject::NotIncreasing));
        assert_eq!(r.step(&delete(5), None), Ok(Register::Absent));
        // Absent again: reads see nothing, a create (cas on 0) succeeds.
        let gone = r.step(&delete(5), Some(6)).unwrap();
        assert_eq!(gone.step(&read("k", None, None), None), Ok(gone));
        assert_eq!(gone.step(&read("k", Some(1), Some(5)), None), Err(Reject::Value));
        assert_eq!(gone.step(&cas("k", 0, 2), Some(7)), Ok(known(2, 7)));
    }

    #[test]
    fn unknown_revisions_are_pinned_by_the_first_observer() {
        let r = known(1, 5).step(&write("k", 2), None).unwrap();
        assert_eq!(
            r,
            Register::Present {
                value: 2,
                rev: Rev::AtLeast(6)
            }
        );
        assert_eq!(r.step(&read("k", Some(2), Some(8)), None), Ok(known(2, 8)));
        assert_eq!(r.step(&read("k", Some(2), Some(5)), None), Err(Reject::ModRevision));
        assert_eq!(r.step(&cas("k", 7, 3), Some(10)), Ok(known(3, 10)));
        assert_eq!(r.step(&write("k", 3), Some(6)), Err(Reject::NotIncreasing));
        assert_eq!(r.step(&write("k", 3), Some(7)), Ok(known(3, 7)));
    }
}
