//! Which CPU cores the server runs on.
//!
//! A [`Cores`] value is what the user asked for (`all`, a count, or a list
//! of ids such as `0-3,8`); [`Cores::resolve`] turns it into core ids
//! against the cores this process may run on. Those come from the affinity
//! mask (`sched_getaffinity`, via core_affinity), which also reflects a
//! cpuset-restricted container or `taskset`, never from the machine's count
//! of online CPUs.

use std::fmt;
use std::str::FromStr;

/// The id of one CPU core, as the kernel numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoreId(pub usize);

impl CoreId {
    /// The kernel's number of this core.
    pub fn get(self) -> usize {
        self.0
    }
}

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The cores asked for: `all`, a count (`4`: the first four allowed cores)
/// or a list of ids with ranges (`0-3,8`; `5-5` is core 5 alone).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cores {
    /// Every core this process may run on.
    #[default]
    All,
    /// The first N cores this process may run on.
    Count(usize),
    /// These core ids, each of which must be allowed.
    List(Vec<usize>),
}

/// Why a `--cores` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoresError {
    /// The text is not `all`, a count, or a list of ids and ranges.
    Syntax(String),
    /// A count of zero.
    ZeroCount,
    /// More cores than the process may run on.
    TooMany {
        /// Cores asked for.
        asked: usize,
        /// Cores allowed.
        allowed: Vec<usize>,
    },
    /// A core id outside the allowed set.
    NotAllowed {
        /// The id asked for.
        core: usize,
        /// Cores allowed.
        allowed: Vec<usize>,
    },
    /// The affinity mask could not be read.
    Unavailable,
}

impl fmt::Display for CoresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoresError::Syntax(text) => write!(
                f,
                "invalid value {text:?}: expected `all`, a count such as `4`, \
                 or core ids such as `0-3,8`"
            ),
            CoresError::ZeroCount => f.write_str("a count of 0 cores: at least one is needed"),
            CoresError::TooMany { asked, allowed } => write!(
                f,
                "{asked} cores asked for, but this process may only run on {} ({})",
                allowed.len(),
                format_list(allowed)
            ),
            CoresError::NotAllowed { core, allowed } => write!(
                f,
                "core {core} is not one this process may run on (allowed: {})",
                format_list(allowed)
            ),
            CoresError::Unavailable => {
                f.write_str("could not read the CPU affinity mask of this process")
            }
        }
    }
}

impl std::error::Error for CoresError {}

impl FromStr for Cores {
    type Err = CoresError;

    fn from_str(text: &str) -> Result<Cores, CoresError> {
        let trimmed = text.trim();
        let syntax = || CoresError::Syntax(text.to_string());
        if trimmed.eq_ignore_ascii_case("all") {
            return Ok(Cores::All);
        }
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            let n: usize = trimmed.parse().map_err(|_| syntax())?;
            return if n == 0 { Err(CoresError::ZeroCount) } else { Ok(Cores::Count(n)) };
        }
        let mut ids = Vec::new();
        for part in trimmed.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => {
                    (parse_id(lo).ok_or_else(syntax)?, parse_id(hi).ok_or_else(syntax)?)
                }
                None => {
                    let id = parse_id(part).ok_or_else(syntax)?;
                    (id, id)
                }
            };
            if lo > hi || hi - lo > 65_535 {
                return Err(syntax());
            }
            ids.extend(lo..=hi);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(Cores::List(ids))
    }
}

fn parse_id(text: &str) -> Option<usize> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cores::All => f.write_str("all"),
            Cores::Count(n) => write!(f, "{n}"),
            Cores::List(ids) => f.write_str(&format_list(ids)),
        }
    }
}

impl Cores {
    /// The core ids to run on, given the ids this process may run on
    /// (ascending).
    pub fn resolve(&self, allowed: &[usize]) -> Result<Vec<CoreId>, CoresError> {
        if allowed.is_empty() {
            return Err(CoresError::Unavailable);
        }
        let chosen: Vec<usize> = match self {
            Cores::All => allowed.to_vec(),
            Cores::Count(0) => return Err(CoresError::ZeroCount),
            Cores::Count(n) if *n > allowed.len() => {
                return Err(CoresError::TooMany { asked: *n, allowed: allowed.to_vec() })
            }
            Cores::Count(n) => allowed[..*n].to_vec(),
            Cores::List(ids) => {
                if let Some(&core) = ids.iter().find(|id| !allowed.contains(id)) {
                    return Err(CoresError::NotAllowed { core, allowed: allowed.to_vec() });
                }
                ids.clone()
            }
        };
        Ok(chosen.into_iter().map(CoreId).collect())
    }
}

/// The cores this process may run on, ascending (its affinity mask).
pub fn allowed() -> Vec<usize> {
    let mut ids: Vec<usize> =
        core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids
}

/// Formats ids compactly: `0-3,8`.
pub fn format_list(ids: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end > start + 1 {
            out.push_str(&format!("{start}-{end}"));
        } else if end == start + 1 {
            out.push_str(&format!("{start},{end}"));
        } else {
            out.push_str(&start.to_string());
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ranges_compactly() {
        assert_eq!(format_list(&[0, 1, 2, 3, 8]), "0-3,8");
        assert_eq!(format_list(&[0, 1]), "0,1");
        assert_eq!(format_list(&[5]), "5");
    }
}
