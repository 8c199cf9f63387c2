//! The crate's floors: every `crate::` path in `src/` names a module on the importing module's
//! own floor or below it, never above. The floors are listed once, here, lowest first; a
//! top-level module is one floor, so no two of them can import each other (no cycle outside a
//! family's own folder).
//!
//! Comments are skipped (a doc link may point anywhere); code paths, `use` lists included,
//! are not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The floors, lowest first: a module may import its own floor and those before it.
const FLOORS: &[&str] = &[
    // What everything reports and writes with.
    "dtype",
    "error",
    "files",
    // wgpu: adapter, pipelines, the buffer pool and its buffers, encoders, counters.
    "device",
    // GPU tensors on those buffers.
    "tensor",
    // The WGSL kernels and their typed launchers.
    "kernels",
    // The CPU oracle the kernels are tested against (it shares their parameter types).
    "cpu",
    // Data sets: MNIST's files, and a data set on the device.
    "data",
    // The op graph: kernel launches described by their tensors, and lowered.
    "graph",
    // Capture, fusion and replay of an op graph.
    "capture",
    // Reverse-mode autograd over GPU tensors; a batch as a graph input.
    "autograd",
    // Layers, models, training, checkpoints.
    "nn",
    // The kernels check, which runs everything above.
    "conformance",
];

/// Names the crate root re-exports, by the module they come from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Error", "error"),
    ("Result", "error"),
    ("Device", "device"),
    ("DeviceOptions", "device"),
    ("Encoder", "device"),
    ("AdapterSummary", "device"),
    ("CounterSnapshot", "device"),
    ("BuiltPipeline", "device"),
    ("Profile", "device"),
    ("DispatchGrid", "device"),
    ("list_adapters", "device"),
    ("list_adapters_async", "device"),
    ("Tensor", "tensor"),
    ("Shape", "tensor"),
    ("DType", "dtype"),
    ("activation", "kernels"),
    ("conv", "kernels"),
    ("dropout", "kernels"),
    ("pool", "kernels"),
    ("elementwise", "kernels"),
    ("gather", "kernels"),
    ("head", "kernels"),
    ("loss", "kernels"),
    ("matmul", "kernels"),
    ("metrics", "kernels"),
    ("optim", "kernels"),
    ("reduce", "kernels"),
];

fn floor_of(module: &str) -> Option<usize> {
    let module = ROOT_REEXPORTS
        .iter()
        .find(|(name, _)| *name == module)
        .map_or(module, |(_, from)| from);
    FLOORS.iter().position(|f| *f == module)
}

/// The source without comments (line comments, doc comments and block comments); string
/// literals are kept, which is harmless here.
fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else if let Some(after) = rest.strip_prefix('"') {
            // Skip a string literal whole, so a "//" inside one is not a comment.
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            out.push_str("\"\"");
            rest = &after[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn identifier(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segments after every `crate::` in `source`, `use crate::{a::b, c}` lists
/// included, with the line each is on.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let code = strip_comments(source);
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let preceded = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if preceded {
            continue; // `$crate::` or `some_crate::`
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            // The top-level items of the braced list.
            let (mut depth, mut item_start) = (0usize, 0usize);
            for (i, c) in list.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push((line, identifier(list[item_start..i].trim()).to_string()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push((line, identifier(list[item_start..i].trim()).to_string()));
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push((line, identifier(rest).to_string()));
        }
    }
    found.retain(|(_, name)| !name.is_empty() && name != "self");
    found
}

/// Every import in `source` (the file of top-level module `module`) of a higher floor, as
/// `line: crate::name (floor) from module (floor)`.
fn upward_imports(module: &str, source: &str) -> Vec<String> {
    let Some(own) = floor_of(module) else {
        return vec![format!("{module} is on no floor: add it to FLOORS")];
    };
    crate_paths(source)
        .into_iter()
        .filter_map(|(line, name)| match floor_of(&name) {
            Some(floor) if floor > own => Some(format!(
                "line {line}: crate::{name} ({}) imported by {module} ({})",
                FLOORS[floor], FLOORS[own]
            )),
            Some(_) => None,
            None => Some(format!(
                "line {line}: crate::{name} is on no floor (add it to FLOORS or ROOT_REEXPORTS)"
            )),
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut modules = std::collections::BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue; // the root declares and re-exports every floor
        }
        modules.insert(module.clone());
        let found = upward_imports(&module, &std::fs::read_to_string(file).unwrap());
        if !found.is_empty() {
            problems.insert(relative.display().to_string(), found);
        }
    }
    assert!(
        problems.is_empty(),
        "imports that point up the floors (tests/layering.rs lists them):\n{problems:#?}"
    );
    // Every floor is a module that exists, so the list cannot go stale.
    for floor in FLOORS {
        assert!(
            modules.contains(*floor),
            "FLOORS names {floor}, which src/ lacks"
        );
    }
}

#[test]
fn an_upward_import_is_found_in_every_form() {
    let tensor = "use crate::device::Device;\nuse crate::{Error, Result};\n";
    assert!(upward_imports("tensor", tensor).is_empty());
    for upward in [
        "use crate::capture::Op;",
        "use crate::{Error, autograd::Var};",
        "use crate::{\n    device::Device,\n    nn::{Mlp, MlpConfig},\n};",
        "fn f() -> bool { crate::capture::is_capturing() }",
        "impl Record for crate::data::gpu::BatchGather {}",
        "use crate::{Device, loss::Labels};", // a family re-exported at the root
    ] {
        let found = upward_imports("device", upward);
        assert_eq!(found.len(), 1, "{upward}: {found:?}");
    }
    // Comments and strings are not imports.
    let quiet = "// crate::nn\n/// [`x`](crate::nn::Mlp)\n/* crate::nn */ let s = \"crate::nn\";";
    assert!(upward_imports("device", quiet).is_empty());
    assert_eq!(
        upward_imports("ghost", "")[0],
        "ghost is on no floor: add it to FLOORS"
    );
}
