//! The code's shape, checked from its source: no import cycle among the server's modules or
//! among the web app's pages, and no route that imports another route. A cycle is where "one
//! way through the code" ends, so a new one fails the build here, with the path that closes it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The source without comments and string literals, which may mention paths that are not
/// imports.
fn code_of(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first path segment of every path that starts with `prefix`, including each item of a
/// `prefix{a::b, c}` group.
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start => {
                        item_start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() {
                            out.insert(name.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// A cycle in `graph`, as the path that closes it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The server's modules, each by its top-level name, and which others each one uses.
fn server_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("server/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue;
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let uses = graph.entry(top.clone()).or_default();
        for name in names_after(&code, "crate::") {
            if name != top && name != "self" {
                uses.insert(name);
            }
        }
    }
    graph
}

#[test]
fn server_modules_import_one_way() {
    let graph = server_graph();
    assert!(graph.contains_key("routes") && graph.contains_key("validate"));
    if let Some(found) = cycle(&graph) {
        panic!("import cycle among server modules: {}", found.join(" → "));
    }
}

#[test]
fn the_data_path_runs_downwards() {
    let graph = server_graph();
    let uses = |a: &str, b: &str| graph.get(a).is_some_and(|u| u.contains(b));
    // route → validate → job → ComfyUI client → delivery → response
    for lower in ["validate", "jobs", "comfy", "templates", "error"] {
        assert!(!uses(lower, "routes"), "{lower} imports routes");
        assert!(!uses(lower, "deliver"), "{lower} imports deliver");
        assert!(!uses(lower, "state"), "{lower} imports the whole state");
    }
    assert!(
        !uses("comfy", "error"),
        "the ComfyUI client maps its own errors"
    );
    assert!(!uses("jobs", "gallery"), "jobs write to the gallery");
}

#[test]
fn no_route_imports_another() {
    let dir = root().join("server/src/routes");
    let routes: BTreeSet<String> = rust_files(&dir)
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().to_string())
        .filter(|name| name != "mod")
        .collect();
    for route in &routes {
        let code = code_of(&std::fs::read_to_string(dir.join(format!("{route}.rs"))).unwrap());
        let mut used = names_after(&code, "super::");
        used.extend(
            names_after(&code, "crate::")
                .into_iter()
                .filter(|n| n == "routes"),
        );
        let others: Vec<_> = used
            .iter()
            .filter(|n| routes.contains(*n) && *n != route)
            .collect();
        assert!(others.is_empty(), "route {route} imports {others:?}");
        assert!(
            !used.contains("routes"),
            "route {route} imports the routes module"
        );
    }
}

#[test]
fn web_app_pages_import_one_way() {
    let dir = root().join("app/src/pages");
    let files = rust_files(&dir);
    // A page's browser-only half is its child (`#[path = "chat_browser.rs"] mod browser`):
    // it belongs to that page.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(file).unwrap();
        for line in source.lines() {
            if let Some(child) = line
                .trim()
                .strip_prefix("#[path = \"")
                .and_then(|r| r.strip_suffix(".rs\"]"))
            {
                owner.insert(child.to_string(), stem.clone());
            }
        }
    }
    let page_of = |stem: &str| owner.get(stem).cloned().unwrap_or_else(|| stem.to_string());
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        if stem == "mod" {
            continue;
        }
        let page = page_of(&stem);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let mut used = names_after(&code, "crate::pages::");
        if !owner.contains_key(&stem) {
            used.extend(names_after(&code, "super::"));
        }
        let uses = graph.entry(page.clone()).or_default();
        for name in used {
            let target = page_of(&name);
            if target != page && dir.join(format!("{name}.rs")).exists() {
                uses.insert(target);
            }
        }
    }
    assert!(graph.len() > 5, "pages found: {:?}", graph.keys());
    if let Some(found) = cycle(&graph) {
        panic!(
            "import cycle among the web app's pages: {}",
            found.join(" → ")
        );
    }
}

#[test]
fn the_checker_finds_what_it_should() {
    let code = code_of(
        "use crate::{a::b, c::{d, e}, f};\n// crate::commented\nlet s = \"crate::quoted\";\nx = crate::g::h(); y = other_crate::i;",
    );
    let names: Vec<_> = names_after(&code, "crate::").into_iter().collect();
    assert_eq!(names, ["a", "c", "f", "g"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(cycle(&graph), None);
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
