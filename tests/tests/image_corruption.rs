//! Corrupted, truncated and random images: validation returns an error (or accepts only what is
//! still consistent) and never panics, whatever the bytes.

use proptest::prelude::*;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::{reserve_layout, DevAddr};
use pto_device::boot::validate::validate_image;
use pto_device::boot::{DeviceRegions, RegionSpan};
use pto_host::{build_runtime_image, nominal_regions};

fn small_image() -> Vec<u8> {
    let layout = reserve_layout(&ArenaSizingKey::smallest()).unwrap();
    let nominal = nominal_regions(&layout).unwrap();
    let regions = DeviceRegions {
        arena: RegionSpan::new(DevAddr(1 << 40), nominal.arena.size),
        sm: RegionSpan::new(DevAddr((1 << 40) + (1 << 30)), nominal.sm.size),
        heap: RegionSpan::new(DevAddr((1 << 40) + (2 << 30)), nominal.heap.size),
    };
    build_runtime_image(&layout, &regions).unwrap().bytes().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any change of one to eight bytes inside the image header or the runtime header is either
    /// rejected with an error or leaves an image whose checked fields are all still consistent.
    #[test]
    fn corrupting_header_bytes_never_panics(
        edits in prop::collection::vec((0usize..1100, any::<u8>()), 1..8),
        region_size in prop_oneof![Just(u64::MAX), 0u64..200_000],
    ) {
        let mut bytes = small_image();
        for (at, v) in &edits {
            bytes[*at] = *v;
        }
        if let Ok(v) = validate_image(&bytes, region_size) {
            let good = validate_image(&small_image(), u64::MAX).unwrap();
            prop_assert_eq!(v.layout, good.layout, "an accepted image must carry the computed layout");
            prop_assert!(v.header.image_size <= region_size);
        }
    }

    /// Every truncation of a valid image is rejected as truncated.
    #[test]
    fn truncations_are_rejected(len in 0usize..88_384) {
        let bytes = small_image();
        let len = len.min(bytes.len() - 1);
        let e = validate_image(&bytes[..len], u64::MAX).expect_err("a truncated image must be rejected");
        prop_assert_eq!(e.code, pto_abi::error::BootErrorCode::ImageTruncated);
    }

    /// Random bytes of any length are rejected.
    #[test]
    fn random_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(validate_image(&bytes, u64::MAX).is_err());
    }
}
