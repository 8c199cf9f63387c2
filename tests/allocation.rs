//! Sizes past the device's limits are refused before host memory is spent on them: a model
//! too wide for the device fails with a clear error, not an abort in the allocator. A counting
//! allocator records the largest single allocation made while it is refused.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use wgsl_nn::Error;
use wgsl_nn::nn::{Mlp, MlpConfig};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_model_too_wide_for_the_device_is_refused_before_its_weights_are_allocated() {
    let device = common::gpu();
    LARGEST.store(0, Ordering::Relaxed);
    // The narrowest hidden layer whose 784 × width weights pass the device's binding limit
    // (3.1 GB for lavapipe's 128 MiB would be 42,800 units; any device's is refused).
    let limit = device.limits().max_storage_buffer_binding_size;
    let width = (limit / (784 * 4) + 1) as usize;
    let config = MlpConfig {
        widths: vec![784, width, 10],
        ..MlpConfig::lecture()
    };
    let error = Mlp::new(device, config).unwrap_err();
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&format!("[784, {width}]")),
        "{error}"
    );
    assert!(
        largest < 16 << 20,
        "{largest} bytes were allocated on the host before the size was refused"
    );
}
