//! The device layer: adapter choice, counters, pipeline cache, buffer reuse and every error
//! the issue names.

mod common;

use common::{fresh_gpu, gpu};
use wgsl_nn::device::ShaderSource;
use wgsl_nn::matmul::{Matmul, MatmulKernel, MatmulOptions, matmul_into};
use wgsl_nn::{Device, DeviceOptions, Error, Shape, Tensor, list_adapters};

#[test]
fn lists_adapters_with_name_backend_type_and_driver() {
    let adapters = list_adapters(None);
    assert!(!adapters.is_empty(), "no adapter listed");
    let chosen = gpu().adapter();
    assert!(
        adapters.iter().any(|a| a == chosen),
        "the chosen adapter {chosen} is not among the listed ones: {adapters:?}"
    );
    let line = chosen.to_string();
    assert!(line.contains(&chosen.name) && line.contains(&format!("{:?}", chosen.backend)));
}

/// The limits of the adapter `device` runs on, asked of wgpu directly.
fn adapter_limits(device: &Device) -> wgpu::Limits {
    let summary = device.adapter();
    let backends = wgpu::Backends::from(summary.backend);
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    descriptor.backends = backends;
    let instance = wgpu::Instance::new(descriptor);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let adapter = adapters
        .iter()
        .find(|a| {
            let info = a.get_info();
            (
                &info.name,
                info.backend,
                info.device_type,
                &info.driver_info,
            ) == (
                &summary.name,
                summary.backend,
                summary.device_type,
                &summary.driver_info,
            )
        })
        .unwrap_or_else(|| panic!("the device's adapter {summary} is not enumerated"));
    adapter.limits()
}

#[test]
fn device_uses_the_adapters_limits_not_the_defaults() {
    let device = gpu();
    // What the wgpu device was actually created with, not a copy kept beside it.
    let actual = device.wgpu_device().limits();
    assert_eq!(
        actual,
        adapter_limits(device),
        "the device must be created with its adapter's own limits"
    );
    assert_eq!(
        *device.limits(),
        actual,
        "Device::limits must report the device's limits"
    );
    // WebGPU's defaults are the floor any adapter offers.
    let defaults = wgpu::Limits::default();
    assert!(actual.max_storage_buffer_binding_size >= defaults.max_storage_buffer_binding_size);
    assert!(
        actual.max_compute_invocations_per_workgroup
            >= defaults.max_compute_invocations_per_workgroup
    );
    assert!(actual.max_buffer_size >= defaults.max_buffer_size);
}

#[test]
fn no_matching_adapter_is_an_error_that_lists_what_exists_and_how_to_pick() {
    let options = DeviceOptions::default().with_adapter_name("no-such-adapter-xyz");
    let error = Device::with_options(&options).unwrap_err();
    assert!(matches!(error, Error::NoAdapter { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("no-such-adapter-xyz"), "{message}");
    assert!(
        message.contains(&gpu().adapter().name),
        "the adapters that exist are not listed: {message}"
    );
    assert!(
        message.contains(wgsl_nn::device::ADAPTER_ENV),
        "no word on how to pick one: {message}"
    );
    assert!(
        !message.contains("Install") && !message.contains("mesa-vulkan-drivers"),
        "an adapter exists, so no driver is missing: {message}"
    );
}
#[test]
fn unknown_backend_name_is_an_invalid_argument() {
    let error = DeviceOptions::default().with_backend("cuda").unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    assert!(error.to_string().contains("vulkan, metal, dx12, gl"));
}

#[test]
fn adapter_name_filter_selects_the_named_adapter() {
    // A filter that matches nothing must fail: were the filter ignored, it would open the
    // default adapter.
    let none = DeviceOptions::default().with_adapter_name("nonexistent-adapter-name");
    assert!(
        matches!(Device::with_options(&none), Err(Error::NoAdapter { .. })),
        "a filter matching no adapter was ignored"
    );
    // A part of the name from its middle, in another case, selects the adapter.
    let name = gpu().adapter().name.clone();
    let chars: Vec<char> = name.chars().collect();
    let fragment: String = chars[chars.len() / 4..chars.len() / 4 + (chars.len() / 2).max(1)]
        .iter()
        .collect::<String>()
        .to_uppercase();
    let device =
        Device::with_options(&DeviceOptions::default().with_adapter_name(&fragment)).unwrap();
    assert!(
        device.adapter().name.to_uppercase().contains(&fragment),
        "`{fragment}` selected {}",
        device.adapter()
    );
}

/// The child half of the next test: runs with `VK_ICD_FILENAMES` pointing nowhere.
fn no_vulkan_driver_child() {
    let native = list_adapters(Some(wgpu::Backends::PRIMARY));
    if !native.is_empty() {
        // Metal or DX12 still have an adapter: nothing to explain.
        Device::new().expect("a native adapter exists");
        return;
    }
    let message = Device::new().unwrap_err().to_string();
    assert!(
        message.contains("VK_ICD_FILENAMES=/nonexistent.json"),
        "{message}"
    );
    let gl = list_adapters(Some(wgpu::Backends::GL));
    match gl.first() {
        Some(adapter) => {
            assert!(
                !message.contains("any backend") && !message.contains("at all"),
                "an OpenGL adapter exists: {message}"
            );
            assert!(message.contains(&adapter.name), "{message}");
            assert!(message.contains("WGSL_NN_BACKEND=gl"), "{message}");
        }
        None => assert!(message.contains("mesa-vulkan-drivers"), "{message}"),
    }
}

#[test]
fn without_a_vulkan_driver_the_error_names_the_backend_that_has_an_adapter() {
    const TEST: &str = "without_a_vulkan_driver_the_error_names_the_backend_that_has_an_adapter";
    if std::env::var_os("WGSL_NN_TEST_CHILD").is_some() {
        return no_vulkan_driver_child();
    }
    // The Vulkan loader reads VK_ICD_FILENAMES once per process: run in a child process.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("WGSL_NN_TEST_CHILD", "1")
        .env("VK_ICD_FILENAMES", "/nonexistent.json")
        .env_remove(wgsl_nn::device::BACKEND_ENV)
        .env_remove(wgsl_nn::device::ADAPTER_ENV)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
}

#[test]
fn check_tensor_size_refuses_a_tensor_beyond_the_limits_before_allocating() {
    let device = fresh_gpu();
    let limits = device.limits().clone();
    let (limit, name) = if limits.max_storage_buffer_binding_size < limits.max_buffer_size {
        (
            limits.max_storage_buffer_binding_size,
            "max_storage_buffer_binding_size",
        )
    } else {
        (limits.max_buffer_size, "max_buffer_size")
    };
    let before = device.counters();
    let elements = (limit / 4 + 1) as usize;
    let error = device
        .check_tensor_size(&Shape::new([elements]))
        .unwrap_err();
    match &error {
        Error::TooLarge { limit_name, .. } => assert_eq!(*limit_name, name, "{error}"),
        other => panic!("{other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(name) && message.contains(&limit.to_string()),
        "the limit is not named: {message}"
    );
    assert!(message.contains(&format!("[{elements}]")), "{message}");
    // The check allocates nothing; a size that fits passes and gives its bytes.
    assert_eq!(device.counters() - before, Default::default());
    assert_eq!(device.check_tensor_size(&Shape::new([3, 5])).unwrap(), 60);
    // A buffer that is not bound as storage goes by max_buffer_size alone.
    let error = device
        .check_buffer_size("a staging buffer", limits.max_buffer_size + 1, false)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::TooLarge {
                limit_name: "max_buffer_size",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn counters_are_exact_for_upload_matmul_and_readback() {
    let device = fresh_gpu();
    let start = device.counters();

    let a = Tensor::from_slice(&device, &[1.0; 6], [2, 3]).unwrap();
    let b = Tensor::from_slice(&device, &[1.0; 12], [3, 4]).unwrap();
    let c = Tensor::uninit(&device, [2, 4]).unwrap();
    let after_upload = device.counters() - start;
    assert_eq!(after_upload.bytes_uploaded, 4 * 18);
    assert_eq!(after_upload.buffers_created, 3);
    assert_eq!(
        (after_upload.submits, after_upload.host_syncs),
        (0, 0),
        "uploads must not submit or wait"
    );

    // The blocked kernel is one dispatch on every device.
    let options = MatmulOptions {
        kernel: Some(MatmulKernel::Blocked),
        ..Default::default()
    };
    let before = device.counters();
    matmul_into(&a, &b, &c, &options).unwrap();
    let first = device.counters() - before;
    assert_eq!(first.submits, 1);
    assert_eq!(first.dispatches, 1);
    assert_eq!(first.host_syncs, 0, "a matmul must not wait for the device");
    assert_eq!(first.pipelines_created, 1);
    assert_eq!(
        first.buffers_created, 3,
        "only the uniforms (sizes, the activation's runtime) and the 16-byte scratch bound \
         where a second k pass would keep its partial sums (WebGPU forbids binding C twice)"
    );

    let before = device.counters();
    matmul_into(&a, &b, &c, &options).unwrap();
    let second = device.counters() - before;
    assert_eq!(
        second.pipelines_created, 0,
        "the pipeline must come from the cache"
    );

    let before = device.counters();
    assert_eq!(c.to_vec().unwrap(), vec![3.0; 8]);
    let readback = device.counters() - before;
    assert_eq!(readback.host_syncs, 1);
    assert_eq!(readback.submits, 1);
    assert_eq!(readback.dispatches, 0);
    assert_eq!(readback.bytes_read_back, 4 * 8);
}

#[test]
fn one_encoder_records_many_dispatches_in_one_submit() {
    let device = fresh_gpu();
    let a = Tensor::from_slice(&device, &[2.0; 4], [2, 2]).unwrap();
    let b = Tensor::from_slice(&device, &[3.0; 4], [2, 2]).unwrap();
    let c = Tensor::zeros(&device, [2, 2]).unwrap();
    for kernel in MatmulKernel::ALL {
        c.write(&[0.0; 4]).unwrap();
        let options = MatmulOptions {
            accumulate: true,
            kernel: Some(kernel),
            ..Default::default()
        };
        let plan = Matmul::new(&a, &b, &c, &options).unwrap();
        let per_record = plan.dispatch_count() as u64;
        assert_eq!(
            per_record,
            if kernel == MatmulKernel::Texture {
                3
            } else {
                1
            }
        );
        let before = device.counters();
        let mut encoder = device.encoder();
        for _ in 0..10 {
            plan.record(&mut encoder);
        }
        assert_eq!(encoder.dispatch_count(), 10 * per_record);
        encoder.submit().unwrap();
        let delta = device.counters() - before;
        assert_eq!(
            (delta.submits, delta.dispatches, delta.host_syncs),
            (1, 10 * per_record, 0)
        );
        // Ten accumulations of 2·3 + 2·3 = 12, in order.
        assert_eq!(c.to_vec().unwrap(), vec![120.0; 4], "{kernel:?}");
    }
}

#[test]
fn dropped_tensors_are_reused_instead_of_reallocated() {
    let device = fresh_gpu();
    drop(Tensor::zeros(&device, [17, 19]).unwrap());
    let before = device.counters();
    for _ in 0..5 {
        let t = Tensor::zeros(&device, [17, 19]).unwrap();
        drop(t);
    }
    assert_eq!((device.counters() - before).buffers_created, 0);
}

#[test]
fn invalid_wgsl_is_a_validation_error_naming_the_shader() {
    let device = fresh_gpu();
    let broken = ShaderSource {
        name: "broken_kernel",
        wgsl: "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
        storage_buffers: &[],
    };
    let error = device.pipeline(&broken, "main", &[]).unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error:?}");
    assert!(error.to_string().contains("broken_kernel"), "{error}");
    // The device stays usable after a rejected shader.
    assert_eq!(
        Tensor::from_slice(&device, &[1.0], [1])
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![1.0]
    );
}

#[test]
fn missing_entry_point_is_a_validation_error() {
    let device = fresh_gpu();
    let error = device
        .pipeline(&wgsl_nn::matmul::SHADER, "no_such_entry", &[])
        .unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error:?}");
}

#[test]
fn errors_outside_a_scope_surface_as_error_values() {
    let device = fresh_gpu();
    // MAP_READ may only be combined with COPY_DST: wgpu reports this to the uncaptured-error
    // handler, and the next operation must return it instead of panicking.
    let _invalid = device.wgpu_device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid usage"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let error = device.check("test").unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error:?}");
    device
        .check("test")
        .expect("a reported error is returned once");
}

#[test]
fn a_buffer_beyond_the_binding_limit_is_a_clear_error() {
    let device = gpu();
    let limit = device
        .limits()
        .max_storage_buffer_binding_size
        .min(device.limits().max_buffer_size);
    let elements = (limit / 4 + 1) as usize;
    let error = Tensor::zeros(device, [elements]).unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("[{elements}]")), "{message}");
    assert!(
        message.contains("max_"),
        "the limit is not named: {message}"
    );
}

#[test]
fn a_dispatch_beyond_the_workgroup_limit_is_a_clear_error() {
    let device = gpu();
    // One column per row: 8 rows per workgroup → more workgroups than one dimension allows.
    let rows = device.limits().max_compute_workgroups_per_dimension as usize * 8 + 8;
    let a = Tensor::uninit(device, [rows, 1]).unwrap();
    let b = Tensor::uninit(device, [1, 1]).unwrap();
    let c = Tensor::uninit(device, [rows, 1]).unwrap();
    let options = MatmulOptions {
        kernel: Some(wgsl_nn::matmul::MatmulKernel::Blocked),
        ..Default::default()
    };
    let error = Matmul::new(&a, &b, &c, &options).unwrap_err();
    assert!(
        matches!(
            error,
            Error::TooLarge {
                limit_name: "max_compute_workgroups_per_dimension",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_destroyed_device_reports_device_lost() {
    let device = fresh_gpu();
    let t = Tensor::from_slice(&device, &[1.0, 2.0], [2]).unwrap();
    device.destroy();
    let error = t.to_vec().unwrap_err();
    assert!(matches!(error, Error::DeviceLost(_)), "{error:?}");
    assert!(matches!(
        Tensor::zeros(&device, [4]).unwrap_err(),
        Error::DeviceLost(_)
    ));
}

#[test]
fn prepared_kernels_keep_their_tensors_alive() {
    // Dropping a tensor that a prepared kernel binds must not hand its buffer to a new
    // tensor: the kernel keeps the storage until it is dropped itself.
    let device = fresh_gpu();
    let a = Tensor::from_slice(&device, &[1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap();
    let b = Tensor::from_slice(&device, &[1.0, 0.0, 0.0, 1.0], [2, 2]).unwrap();
    let c = Tensor::uninit(&device, [2, 2]).unwrap();
    let plan = Matmul::new(&a, &b, &c, &MatmulOptions::default()).unwrap();
    drop(a);
    drop(b);
    let intruder = Tensor::from_slice(&device, &[9.0; 4], [2, 2]).unwrap();
    let mut encoder = device.encoder();
    plan.record(&mut encoder);
    // The encoder, too, holds what it recorded until submit.
    drop(plan);
    let late = Tensor::from_slice(&device, &[7.0; 4], [2, 2]).unwrap();
    encoder.submit().unwrap();
    assert_eq!(c.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(intruder.to_vec().unwrap(), vec![9.0; 4]);
    assert_eq!(late.to_vec().unwrap(), vec![7.0; 4]);
}

#[test]
fn an_entry_point_binding_more_storage_buffers_than_the_device_allows_is_refused_first() {
    let device = gpu();
    let limit = device.limits().max_storage_buffers_per_shader_stage;
    // Valid WGSL, declared (as the kernels declare theirs) to bind one more than the limit.
    let greedy = ShaderSource {
        name: "greedy_kernel",
        wgsl: "@compute @workgroup_size(1) fn main() {}",
        storage_buffers: &[("main", u32::MAX)],
    };
    assert!(!device.binds_enough(&greedy, "main"));
    let error = device.pipeline(&greedy, "main", &[]).unwrap_err();
    match &error {
        Error::TooLarge { limit_name, .. } => {
            assert_eq!(*limit_name, "max_storage_buffers_per_shader_stage")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(error.to_string().contains("greedy_kernel"), "{error}");
    assert!(error.to_string().contains(&limit.to_string()), "{error}");
}
