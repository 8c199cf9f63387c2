//! The host–WGSL contract: every shader, parsed by naga (the WGSL front end wgpu uses), against
//! what the Rust side binds, writes and specialises with (`kernels::contracts`). A binding
//! renumbered on one side only, a uniform field added to one struct only, or an id copied
//! wrongly fails here instead of as garbage on the device.

use std::collections::BTreeMap;

use naga::{AddressSpace, Expression, Literal};
use wgsl_nn::kernels::contracts;

fn parse(name: &str, wgsl: &str) -> naga::Module {
    naga::front::wgsl::parse_str(wgsl)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(wgsl)))
}

#[test]
fn every_shader_agrees_with_its_rust_side() {
    let all = contracts();
    assert_eq!(all.len(), 16, "one contract per shader family");
    for contract in all {
        let name = contract.shader.name;
        let module = parse(name, contract.shader.wgsl);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();

        // Bindings: the same names at the same numbers, none missing on either side.
        let wgsl: BTreeMap<String, u32> = module
            .global_variables
            .iter()
            .filter_map(|(_, g)| {
                let binding = g.binding.as_ref()?;
                assert_eq!(binding.group, 0, "{name}: everything is in group 0");
                Some((g.name.clone()?.to_uppercase(), binding.binding))
            })
            .collect();
        let rust: BTreeMap<String, u32> = contract
            .bindings
            .iter()
            .map(|(n, b)| (n.to_string(), *b))
            .collect();
        assert_eq!(
            wgsl, rust,
            "{name}: bindings differ (WGSL left, Rust right)"
        );

        // Uniforms: every uniform's struct is one the Rust side writes, of the same size.
        let sizes: BTreeMap<&str, usize> = contract.uniforms.iter().copied().collect();
        let mut seen = Vec::new();
        for (_, global) in module.global_variables.iter() {
            if global.space != AddressSpace::Uniform {
                continue;
            }
            let ty = &module.types[global.ty];
            let struct_name = ty.name.clone().expect("uniforms are named structs");
            let rust_size = sizes.get(struct_name.as_str()).unwrap_or_else(|| {
                panic!("{name}: uniform struct {struct_name} has no Rust mirror")
            });
            let wgsl_size = layouter[global.ty].size as usize;
            assert_eq!(
                wgsl_size, *rust_size,
                "{name}: {struct_name} is {wgsl_size} bytes in WGSL, {rust_size} in Rust"
            );
            seen.push(struct_name);
        }
        for (struct_name, _) in &contract.uniforms {
            assert!(
                seen.iter().any(|s| s == struct_name),
                "{name}: the Rust side writes {struct_name}, which no uniform uses"
            );
        }

        // Ids: each WGSL const the Rust side specialises with has the Rust value.
        for (const_name, value) in &contract.constants {
            let constant = module
                .constants
                .iter()
                .find(|(_, c)| c.name.as_deref() == Some(const_name))
                .map(|(_, c)| c)
                .unwrap_or_else(|| panic!("{name}: no WGSL const {const_name}"));
            match module.global_expressions[constant.init] {
                Expression::Literal(Literal::U32(v)) => assert_eq!(
                    v, *value,
                    "{name}: {const_name} is {v} in WGSL, {value} in Rust"
                ),
                ref other => panic!("{name}: {const_name} is not a u32 literal: {other:?}"),
            }
        }
    }
}

#[test]
fn a_mismatch_is_caught() {
    // The check above must be able to fail: a shader with one binding renumbered disagrees.
    let contract = contracts()
        .into_iter()
        .find(|c| c.shader.name == "reduce")
        .expect("the reduce shader");
    let tampered = contract.shader.wgsl.replace(
        "@binding(1) var<storage, read_write> out",
        "@binding(7) var<storage, read_write> out",
    );
    assert_ne!(
        tampered, contract.shader.wgsl,
        "the tampering must change the shader"
    );
    let module = parse("reduce (tampered)", &tampered);
    let out = module
        .global_variables
        .iter()
        .find(|(_, g)| g.name.as_deref() == Some("out"))
        .and_then(|(_, g)| g.binding.as_ref())
        .map(|b| b.binding);
    let rust = contract
        .bindings
        .iter()
        .find(|(n, _)| *n == "OUT")
        .map(|(_, b)| *b);
    assert_ne!(out, rust);
}

/// Every entry point's storage-buffer count, which kernel choice compares with the device's
/// `max_storage_buffers_per_shader_stage`, is the number of storage buffers the entry point
/// statically uses (what a WebGPU implementation counts), and every entry point is listed.
#[test]
fn storage_buffer_counts_match_the_shaders() {
    for contract in contracts() {
        let shader = contract.shader;
        let module = parse(shader.name, shader.wgsl);
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", shader.name));
        let mut listed: Vec<&str> = shader.storage_buffers.iter().map(|(n, _)| *n).collect();
        listed.sort_unstable();
        let mut entry_points: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        entry_points.sort_unstable();
        assert_eq!(listed, entry_points, "{}: entry points listed", shader.name);
        for (i, entry_point) in module.entry_points.iter().enumerate() {
            let uses = info.get_entry_point(i);
            let used = module
                .global_variables
                .iter()
                .filter(|(handle, global)| {
                    matches!(global.space, AddressSpace::Storage { .. })
                        && !uses[*handle].is_empty()
                })
                .count() as u32;
            assert_eq!(
                shader.storage_buffers(&entry_point.name),
                used,
                "{}: `{}` binds {used} storage buffers",
                shader.name,
                entry_point.name
            );
        }
    }
}
