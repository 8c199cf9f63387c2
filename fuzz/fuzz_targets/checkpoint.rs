//! The safetensors checkpoint reader on arbitrary bytes: never a panic, an abort or an
//! allocation past `-malloc_limit_mb`; what it accepts is consistent (F32 or U32, as many
//! bytes as the shape needs, finite values) and survives a round trip through `to_bytes`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wgsl_nn::nn::CheckpointFile;
use wgsl_nn::{DType, Error};

fuzz_target!(|data: &[u8]| {
    match CheckpointFile::parse(data) {
        Ok(file) => {
            for (name, tensor) in &file.tensors {
                let elements = tensor
                    .shape
                    .iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(d));
                assert_eq!(elements.map(|n| n * 4), Some(tensor.bytes.len()), "{name}");
                if tensor.dtype == DType::F32 {
                    assert!(
                        tensor.f32s().unwrap().iter().all(|v| v.is_finite()),
                        "{name}"
                    );
                }
            }
            let bytes = file
                .to_bytes()
                .expect("a checkpoint that parsed serialises");
            let again = CheckpointFile::parse(&bytes).expect("a serialised checkpoint parses");
            assert_eq!(again, file);
            assert_eq!(
                again.to_bytes().unwrap(),
                bytes,
                "serialising is deterministic"
            );
        }
        Err(Error::Data { .. }) => {}
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
});
