//! The crate's layering, checked: the top-level modules depend on each
//! other one way only (no cycles), and the lowest layers use none above
//! them. Read from the source (`use crate::…` and `crate::…` paths outside
//! test modules and `tests.rs` files), so a new import that breaks the
//! layering fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Top-level module → the top-level modules its code names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("src is readable").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src");
            let first = rel.components().next().expect("a file").as_os_str();
            let top = first.to_string_lossy().trim_end_matches(".rs").to_string();
            let is_tests = path.file_name().is_some_and(|n| n == "tests.rs");
            if is_tests
                || path.extension().is_none_or(|e| e != "rs")
                || ["lib", "main", "layout"].contains(&top.as_str())
            {
                continue;
            }
            let text = fs::read_to_string(&path).expect("readable source");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
            let used: &mut BTreeSet<String> = edges.entry(top.clone()).or_default();
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let rest = rest.trim_start_matches('{');
                let name: String =
                    rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != top {
                    used.insert(name);
                }
            }
        }
    }
    edges
}

/// Whether `to` can be reached from `from`.
fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut next = vec![from.to_string()];
    while let Some(module) = next.pop() {
        if module == to {
            return true;
        }
        if seen.insert(module.clone()) {
            next.extend(edges.get(&module).into_iter().flatten().cloned());
        }
    }
    false
}

/// Prints the graph (`cargo test --lib layout -- --nocapture` shows it).
#[test]
fn top_level_modules_have_no_import_cycles() {
    let edges = edges();
    for (from, to) in &edges {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        println!("{from} -> {}", to.join(" "));
    }
    let cycles: Vec<String> = edges
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |to| (from, to)))
        .filter(|(from, to)| reaches(&edges, to, from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(cycles.is_empty(), "edges on a cycle: {cycles:?}");
}

#[test]
fn lower_layers_use_nothing_above_them() {
    let edges = edges();
    let allowed: [(&str, &[&str]); 8] = [
        ("http", &["recycle"]),
        ("tls", &["counter"]),
        ("counter", &[]),
        ("recycle", &[]),
        ("blocking", &[]),
        ("shutdown", &["io"]),
        ("config", &["cores", "http", "proxy", "tls"]),
        (
            "conn",
            &[
                "access_log",
                "admission",
                "app",
                "config",
                "http",
                "io",
                "metrics",
                "proxy",
                "recycle",
                "shutdown",
            ],
        ),
    ];
    for (module, may_use) in allowed {
        let uses = edges.get(module).cloned().unwrap_or_default();
        let extra: Vec<&String> = uses.iter().filter(|u| !may_use.contains(&u.as_str())).collect();
        assert!(extra.is_empty(), "{module} uses {extra:?}");
    }
}

/// Paths that `dir`'s source files (under `src/`) contain, of `needles`.
fn files_containing(dir: &str, needles: &[&str]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).expect("source directory is readable") {
        let path = entry.expect("readable").path();
        let text = fs::read_to_string(&path).expect("readable source");
        for needle in needles.iter().filter(|n| text.contains(**n)) {
            found.push(format!("{} uses {needle}", path.display()));
        }
    }
    found
}

#[test]
fn io_system_calls_use_nothing_of_the_crate() {
    assert_eq!(files_containing("io/sys", &["crate::"]), Vec::<String>::new());
}

#[test]
fn connections_reach_the_kernel_only_through_io() {
    let raw = ["io::sys", "RawFd", "as_raw_fd", "libc::shutdown", "set_nonblocking"];
    assert_eq!(files_containing("conn", &raw), Vec::<String>::new());
}
