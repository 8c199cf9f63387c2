//! GPU tensors: round trips, shapes and shape errors.

mod common;

use common::{gpu, random_vec, rng};
use wgsl_nn::matmul::{MatmulForm, MatmulOptions, matmul, matmul_into};
use wgsl_nn::{Error, Shape, Tensor};

#[test]
fn upload_and_download_round_trip_exactly() {
    let mut r = rng(1);
    for len in [1, 2, 3, 4, 5, 63, 64, 65, 1000, 100_003] {
        let data = random_vec(&mut r, len);
        let t = Tensor::from_slice(gpu(), &data, [len]).unwrap();
        assert_eq!(t.to_vec().unwrap(), data, "length {len}");
    }
}

#[test]
fn zeros_are_zero_even_in_a_recycled_buffer() {
    let device = gpu();
    drop(Tensor::from_slice(device, &[7.0; 35], [5, 7]).unwrap());
    let z = Tensor::zeros(device, [5, 7]).unwrap();
    assert_eq!(z.to_vec().unwrap(), vec![0.0; 35]);
}

#[test]
fn write_overwrites_and_checks_the_length() {
    let t = Tensor::zeros(gpu(), [2, 2]).unwrap();
    t.write(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(t.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    let error = t.write(&[1.0]).unwrap_err();
    assert!(matches!(error, Error::Shape { .. }), "{error:?}");
}

#[test]
fn reshape_keeps_data_and_rejects_a_different_count() {
    let t = Tensor::from_slice(gpu(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let t = t.reshape([3, 2]).unwrap();
    assert_eq!(t.shape(), &Shape::new([3, 2]));
    assert_eq!(t.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let error = t.reshape([4, 2]).unwrap_err().to_string();
    assert!(
        error.contains("[4, 2]") && error.contains("[3, 2]"),
        "{error}"
    );
}

#[test]
fn from_slice_with_the_wrong_length_names_both_sizes() {
    let error = Tensor::from_slice(gpu(), &[1.0; 5], [2, 3])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("[2, 3]") && error.contains("5 values"),
        "{error}"
    );
}

#[test]
fn empty_tensors_are_allowed_and_read_back_empty() {
    let t = Tensor::zeros(gpu(), [0, 3]).unwrap();
    assert_eq!(t.numel(), 0);
    assert!(t.to_vec().unwrap().is_empty());
}

#[test]
fn matmul_shape_errors_name_both_shapes() {
    let device = gpu();
    let a = Tensor::uninit(device, [2, 3]).unwrap();
    let b = Tensor::uninit(device, [4, 5]).unwrap();
    let error = matmul(&a, &b, &MatmulOptions::default()).unwrap_err();
    assert!(matches!(error, Error::Shape { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("[2, 3]") && message.contains("[4, 5]"),
        "{message}"
    );

    // Aᵀ·B needs equal row counts.
    let error = matmul(&a, &b, &MatmulOptions::form(MatmulForm::AtB))
        .unwrap_err()
        .to_string();
    assert!(error.contains("AtB") && error.contains("[2, 3]"), "{error}");

    // A vector is not a matrix.
    let v = Tensor::uninit(device, [3]).unwrap();
    assert!(matches!(
        matmul(&v, &b, &MatmulOptions::default()).unwrap_err(),
        Error::Shape { .. }
    ));
}

#[test]
fn matmul_output_and_bias_shapes_are_checked() {
    let device = gpu();
    let a = Tensor::uninit(device, [2, 3]).unwrap();
    let b = Tensor::uninit(device, [3, 4]).unwrap();
    let wrong_out = Tensor::uninit(device, [4, 2]).unwrap();
    let error = matmul_into(&a, &b, &wrong_out, &MatmulOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("[2, 4]") && error.contains("[4, 2]"),
        "{error}"
    );

    let wrong_bias = Tensor::uninit(device, [3]).unwrap();
    let options = MatmulOptions {
        bias: Some(&wrong_bias),
        ..Default::default()
    };
    let error = matmul(&a, &b, &options).unwrap_err().to_string();
    assert!(
        error.contains("bias [4]") && error.contains("[3]"),
        "{error}"
    );

    let row_bias = Tensor::from_slice(device, &[1.0; 4], [1, 4]).unwrap();
    let options = MatmulOptions {
        bias: Some(&row_bias),
        ..Default::default()
    };
    matmul(&a, &b, &options).expect("a [1, N] bias is accepted");
}

#[test]
fn matmul_rejects_an_output_aliasing_an_input() {
    let device = gpu();
    let a = Tensor::uninit(device, [3, 3]).unwrap();
    let b = Tensor::uninit(device, [3, 3]).unwrap();
    let error = matmul_into(&a, &b, &a, &MatmulOptions::default()).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
}

#[test]
fn matmul_allocating_form_rejects_accumulate() {
    let device = gpu();
    let a = Tensor::uninit(device, [2, 2]).unwrap();
    let options = MatmulOptions {
        accumulate: true,
        ..Default::default()
    };
    assert!(matches!(
        matmul(&a, &a, &options).unwrap_err(),
        Error::InvalidArgument(_)
    ));
}

#[test]
fn a_shape_whose_element_count_overflows_is_too_large_naming_the_shape() {
    // 2^33 · 2^33 wraps to 0 in a plain usize product: a 16-byte buffer for 2^66 elements.
    let dims = [1usize << 33, 1 << 33];
    let shape = Shape::new(dims);
    assert_eq!(shape.checked_numel(), None);
    assert_eq!(
        shape.numel(),
        usize::MAX,
        "numel saturates instead of wrapping"
    );
    assert_eq!(shape.checked_bytes(4), None);
    let device = gpu();
    let results = [
        ("uninit", Tensor::uninit(device, dims)),
        ("zeros", Tensor::zeros(device, dims)),
        ("from_slice", Tensor::from_slice(device, &[], dims)),
        ("from_u32", Tensor::from_u32(device, &[], dims)),
    ];
    for (what, result) in results {
        let error = result.unwrap_err();
        assert!(matches!(error, Error::TooLarge { .. }), "{what}: {error:?}");
        let message = error.to_string();
        assert!(
            message.contains("[8589934592, 8589934592]"),
            "{what}: {message}"
        );
    }
    assert!(matches!(
        device.check_tensor_size(&shape).unwrap_err(),
        Error::TooLarge { .. }
    ));
    // Three dimensions whose product wraps to exactly 2^64 ≡ 0.
    let wraps_to_zero = [1usize << 22, 1 << 21, 1 << 21];
    assert!(matches!(
        Tensor::uninit(device, wraps_to_zero).unwrap_err(),
        Error::TooLarge { .. }
    ));
    // Past u32 indexing without overflowing: named as such.
    let error = Tensor::uninit(device, [1usize << 16, 1 << 16]).unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("4294967296 elements"), "{error}");
    // Reshaping into an overflowing shape is a shape error, not a panic.
    let t = Tensor::zeros(device, [4]).unwrap();
    assert!(matches!(t.reshape(dims).unwrap_err(), Error::Shape { .. }));
}
