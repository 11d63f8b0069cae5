//! A small host-side LRU of built images, so alternating between a few sizings costs an upload
//! (and at most an O(1) rebase to new device bases), not a rebuild.

use std::collections::VecDeque;

use super::builder::Image;
use super::cache::CacheKey;

/// Built images kept by default.
pub const DEFAULT_LRU_CAPACITY: usize = 4;

/// Most recently used first.
#[derive(Debug)]
pub struct ImageLru {
    capacity: usize,
    entries: VecDeque<(CacheKey, Image)>,
}

impl Default for ImageLru {
    fn default() -> Self {
        ImageLru::new(DEFAULT_LRU_CAPACITY)
    }
}

impl ImageLru {
    /// An empty LRU holding at most `capacity` images (0 disables it).
    pub fn new(capacity: usize) -> Self {
        ImageLru { capacity, entries: VecDeque::new() }
    }

    /// Removes and returns the image of `key`, if held.
    pub fn take(&mut self, key: &CacheKey) -> Option<Image> {
        let i = self.entries.iter().position(|(k, _)| k.matches(key))?;
        self.entries.remove(i).map(|(_, img)| img)
    }

    /// Inserts `image` as most recently used, evicting the least recently used beyond capacity.
    pub fn insert(&mut self, key: CacheKey, image: Image) {
        if self.capacity == 0 {
            return;
        }
        self.entries.retain(|(k, _)| !k.matches(&key));
        self.entries.push_front((key, image));
        self.entries.truncate(self.capacity);
    }

    /// True when an image for `key` is held. Never mutates.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.entries.iter().any(|(k, _)| k.matches(key))
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every image.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
