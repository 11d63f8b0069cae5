//! Arena images: the builder, the resident-image cache and the LRU of built images.

pub mod builder;
pub mod cache;
pub mod lru;

pub use builder::{build_runtime_image, nominal_regions, Image, ImageError};
pub use cache::{CacheKey, ImageCache, ResidentImage};
pub use lru::ImageLru;
