//! Errors of the orchestration API: a runtime error code ([`RuntimeErrorCode`](pto_abi::error::RuntimeErrorCode),
//! latched first-writer-wins in the SM error word) plus where and why.

use core::fmt;

use pto_abi::error::RuntimeErrorCode;

pto_abi::abi_enum! {
    /// Why a submit was rejected with `INVALID_ARGS`; carried in the high half of the error detail.
    pub enum InvalidArgs {
        /// More tensor arguments than `MAX_TENSOR_ARGS`.
        TooManyTensors = 1,
        /// More scalar arguments than `MAX_SCALAR_ARGS`.
        TooManyScalars = 2,
        /// `block_num` is 0.
        ZeroBlocks = 3,
        /// A lane's kernel id is not in the launch's func table.
        UnknownKernel = 4,
        /// A tensor view lies outside its buffer, or its buffer is null.
        BadTensorView = 5,
        /// A runtime-allocated output of 0 bytes.
        EmptyOutput = 6,
        /// An explicit dependency names a task that was never submitted.
        UnknownDependency = 7,
        /// A tensor names a creator task that was never submitted.
        UnknownCreator = 8,
        /// Scopes nested deeper than `MAX_SCOPE_DEPTH`.
        ScopeTooDeep = 9,
        /// `scope_end` without an open user scope.
        NoOpenScope = 10,
        /// A run argument is missing or of the wrong kind.
        BadRunArgument = 11,
        /// Tensor and scalar arguments together exceed the kernel argument words.
        TooManyKernelArgs = 12,
    }
}

impl InvalidArgs {
    /// The rule broken, in words.
    pub const fn describe(self) -> &'static str {
        match self {
            InvalidArgs::TooManyTensors => "more than 32 tensor arguments",
            InvalidArgs::TooManyScalars => "more than 16 scalar arguments",
            InvalidArgs::ZeroBlocks => "block_num must be at least 1",
            InvalidArgs::UnknownKernel => "kernel id not in the launch's func table",
            InvalidArgs::BadTensorView => "tensor view outside its buffer (or null buffer)",
            InvalidArgs::EmptyOutput => "runtime-allocated output of 0 bytes",
            InvalidArgs::UnknownDependency => "explicit dependency on a task never submitted",
            InvalidArgs::UnknownCreator => "tensor creator is a task never submitted",
            InvalidArgs::ScopeTooDeep => "scopes nested deeper than 32",
            InvalidArgs::NoOpenScope => "scope_end without an open scope",
            InvalidArgs::BadRunArgument => "run argument missing or of the wrong kind",
            InvalidArgs::TooManyKernelArgs => "tensors plus scalars exceed 48 kernel argument words",
        }
    }

    /// Decodes a reason from an error detail's high half.
    pub fn from_detail(detail: u64) -> Option<InvalidArgs> {
        let v = (detail >> 32) as u32;
        InvalidArgs::try_from(v).ok()
    }
}

/// A failed orchestration call. The first error of a run is latched into the SM error word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrchError {
    /// The runtime error code.
    pub code: RuntimeErrorCode,
    /// Ring concerned, or `u32::MAX`.
    pub ring: u32,
    /// Code-specific detail: for `INVALID_ARGS`, `reason << 32 | argument index`; for explicit
    /// fatal errors, the orchestration's own value; otherwise the task or amount concerned.
    pub detail: u64,
}

impl OrchError {
    /// An `INVALID_ARGS` error for argument `index`.
    pub const fn invalid(reason: InvalidArgs, index: u32) -> Self {
        OrchError {
            code: RuntimeErrorCode::InvalidArgs,
            ring: u32::MAX,
            detail: ((reason as u64) << 32) | index as u64,
        }
    }

    /// An error with a code, ring and detail.
    pub const fn new(code: RuntimeErrorCode, ring: u32, detail: u64) -> Self {
        OrchError { code, ring, detail }
    }

    /// The invalid-argument reason, for `INVALID_ARGS` errors.
    pub fn invalid_reason(&self) -> Option<InvalidArgs> {
        (self.code == RuntimeErrorCode::InvalidArgs).then(|| InvalidArgs::from_detail(self.detail)).flatten()
    }
}

impl fmt::Display for OrchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code.name(), self.code.description())?;
        if let Some(r) = self.invalid_reason() {
            write!(f, ": {} (argument {})", r.describe(), self.detail as u32)?;
        }
        if self.ring != u32::MAX {
            write!(f, " [ring {}]", self.ring)?;
        }
        Ok(())
    }
}
