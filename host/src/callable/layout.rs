//! `compute_chip_callable_layout`: where everything sits in a blob, and its two hashes.

use pto_abi::callable::{CallableError, ChipCallableView, CHIP_HEADER_SIZE};
use pto_abi::task::TensorDirection;

/// Where one child sits in a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildLayout {
    /// Index in the child table.
    pub index: u32,
    /// Func id.
    pub func_id: u32,
    /// Kernel name from the child header.
    pub name: String,
    /// Offset of the child header from the blob start.
    pub offset: u64,
    /// Offset of the kernel code from the blob start.
    pub code_offset: u64,
    /// Bytes of kernel code.
    pub code_size: u64,
    /// Argument directions.
    pub signature: Vec<TensorDirection>,
}

/// The layout and hashes of a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipCallableLayout {
    /// Bytes of the chip header.
    pub header_size: u64,
    /// Bytes of the whole blob.
    pub total_size: u64,
    /// Offset of the orchestration bytes.
    pub orchestration_offset: u64,
    /// Bytes of orchestration.
    pub orchestration_size: u64,
    /// Orchestration name.
    pub orchestration_name: String,
    /// Config name.
    pub config_name: String,
    /// Chip argument directions.
    pub signature: Vec<TensorDirection>,
    /// Every child in table order.
    pub children: Vec<ChildLayout>,
    /// The content hash (the dedup key): FNV-1a 64 over the whole blob with its checksum field read
    /// as zero, verified against that field.
    pub content_hash: u64,
    /// FNV-1a 64 over the children only (unchanged when only orchestration bytes change).
    pub aicore_image_hash: u64,
}

/// Validates `blob` and describes its layout.
pub fn compute_chip_callable_layout(blob: &[u8]) -> Result<ChipCallableLayout, CallableError> {
    let view = ChipCallableView::parse(blob)?;
    Ok(layout_of(&view))
}

/// The layout of an already validated blob.
fn layout_of(view: &ChipCallableView<'_>) -> ChipCallableLayout {
    ChipCallableLayout {
        header_size: CHIP_HEADER_SIZE,
        total_size: view.total_size(),
        orchestration_offset: view.orchestration_offset(),
        orchestration_size: view.orchestration_bytes().len() as u64,
        orchestration_name: view.orchestration_name().to_owned(),
        config_name: view.config_name().to_owned(),
        signature: view.directions().collect(),
        children: view
            .children()
            .map(|c| ChildLayout {
                index: c.index,
                func_id: c.func_id,
                name: c.name.to_owned(),
                offset: c.offset,
                code_offset: c.code_offset,
                code_size: c.code.len() as u64,
                signature: c.directions().collect(),
            })
            .collect(),
        content_hash: view.content_hash(),
        aicore_image_hash: view.aicore_image_hash(),
    }
}
