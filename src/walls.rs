//! The module walls, checked: every `crate::` path in `src/` against the
//! walls table in `ARCHITECTURE.md` (the map of record), and no cycle between
//! top-level modules. Test-only; it reads the sources at test time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One row of the table: its modules and what they may name.
struct Row {
    modules: Vec<String>,
    /// `None`: everything.
    may_use: Option<Vec<String>>,
}

/// The backticked names in a table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The rows after the `<!-- walls:` marker, up to the table's end.
fn table(doc: &str) -> Vec<Row> {
    let start = doc
        .find("<!-- walls:")
        .expect("ARCHITECTURE.md has the walls table");
    let mut rows: Vec<Row> = doc[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Row {
                modules: ticked(cells[2]),
                may_use: (cells[3] != "everything").then(|| {
                    let mut m = ticked(cells[3]);
                    if cells[3].contains("base") {
                        m.push("base".into());
                    }
                    m
                }),
            }
        })
        .collect();
    let base = rows
        .iter()
        .find(|r| r.modules.iter().any(|m| m == "config"))
        .expect("a Base row")
        .modules
        .clone();
    for r in &mut rows {
        if let Some(m) = &mut r.may_use {
            if m.iter().any(|x| x == "base") {
                m.retain(|x| x != "base");
                m.extend(base.iter().cloned());
            }
        }
    }
    rows
}

/// Every `crate::` path in `text` (comment lines skipped), as segments;
/// `use crate::{a::B, c}` gives one path per leaf.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let preceded = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[i + "crate::".len()..];
        if !preceded {
            tree(rest, Vec::new(), &mut out);
        }
    }
    out
}

/// Parses a use tree at the start of `s` (after `crate::` or inside `{}`).
/// Returns how many bytes it read.
fn tree(s: &str, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut at = 0;
    loop {
        let s2 = &s[at..];
        let skip = s2.len() - s2.trim_start().len();
        at += skip;
        let word: String = s[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        at += word.len();
        if !word.is_empty() {
            prefix.push(word);
        }
        if s[at..].starts_with("::{") {
            at += 3;
            loop {
                at += tree(&s[at..], prefix.clone(), out);
                let s3 = &s[at..];
                at += s3.len() - s3.trim_start().len();
                match s[at..].chars().next() {
                    Some(',') => at += 1,
                    Some('}') => return at + 1,
                    _ => return at,
                }
                let s4 = &s[at..];
                if s4.trim_start().starts_with('}') {
                    at += s4.len() - s4.trim_start().len() + 1;
                    return at;
                }
            }
        } else if s[at..].starts_with("::") {
            at += 2;
        } else {
            if !prefix.is_empty() {
                out.push(prefix);
            }
            return at;
        }
    }
}

/// `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for the
/// crate root, the binary, and this checker, whose test texts are not imports).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "walls")).then(|| name.to_owned())
}

/// Whether `path` (segments after `crate::`) is allowed by one `may use` entry.
fn allows(entry: &str, path: &[String]) -> bool {
    entry
        .split("::")
        .enumerate()
        .all(|(i, seg)| path.get(i).is_some_and(|p| p == seg))
}

/// A cycle in `graph`, if any, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|m| m == n).unwrap_or(0);
                let mut c = stack[from..].to_vec();
                c.push(n.to_owned());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut state, &mut Vec::new()))
}

#[test]
fn imports_stay_within_the_walls_and_make_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = table(&std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap());
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for f in &files {
        let Some(module) = module_of(&src, f) else {
            continue;
        };
        let Some(row) = rows.iter().find(|r| r.modules.contains(&module)) else {
            wrong.push(format!(
                "module `{module}` is not in ARCHITECTURE.md's walls table"
            ));
            continue;
        };
        for path in crate_paths(&std::fs::read_to_string(f).unwrap()) {
            if path[0] == module {
                continue;
            }
            graph
                .entry(module.clone())
                .or_default()
                .insert(path[0].clone());
            let ok = row
                .may_use
                .as_ref()
                .is_none_or(|m| m.iter().any(|e| allows(e, &path)));
            if !ok {
                let file = f.strip_prefix(root).unwrap_or(f);
                wrong.push(format!("{}: crate::{}", file.display(), path.join("::")));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports across the walls:\n{}",
        wrong.join("\n")
    );
    assert_eq!(cycle(&graph), None, "a cycle between top-level modules");
}

#[test]
fn the_parser_reads_use_trees_and_finds_cycles() {
    let paths = crate_paths(
        "use crate::a::{b::C, d::{self, E}};\n// crate::commented\nlet x = crate::f::g(); notcrate::h",
    );
    let got: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["a::b::C", "a::d::self", "a::d::E", "f::g"]);
    assert!(allows(
        "nvr::store",
        &["nvr".into(), "store".into(), "db".into()]
    ));
    assert!(!allows("nvr::store", &["nvr".into(), "web".into()]));
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&g).map(|c| c.len()), Some(4));
}
