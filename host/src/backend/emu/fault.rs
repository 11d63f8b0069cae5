//! The firmware's fault and panic records in words: which vCPU took which exception (vector
//! group and kind), the syndrome decoded (ESR_EL1 exception class and, for aborts, the fault
//! status), the faulting instruction (ELR_EL1, with the firmware function that holds it) and the
//! faulting address (FAR_EL1).

use pto_abi::emu::{EmuFaultRecord, EmuPanicRecord, EMU_PANIC_FILE_BYTES, EMU_PANIC_MESSAGE_BYTES};

use super::elf::ElfFile;

/// The vector-table group of entry `vector` (0..16).
fn vector_group(vector: u32) -> &'static str {
    match vector / 4 {
        0 => "the current EL with SP_EL0",
        1 => "the current EL with SP_ELx",
        2 => "a lower EL in AArch64",
        3 => "a lower EL in AArch32",
        _ => "an unknown vector group",
    }
}

/// The exception kind of vector entry `vector`.
fn vector_kind(vector: u32) -> &'static str {
    match vector % 4 {
        0 => "synchronous exception",
        1 => "IRQ",
        2 => "FIQ",
        _ => "SError",
    }
}

/// ESR_EL1's exception class in words.
fn exception_class(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped SIMD/FP access",
        0x0e => "illegal execution state",
        0x15 => "SVC instruction",
        0x16 => "HVC instruction",
        0x17 => "SMC instruction",
        0x18 => "trapped MSR/MRS/system instruction",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort at the current EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort at the current EL",
        0x26 => "SP alignment fault",
        0x2c => "trapped floating-point exception",
        0x2f => "SError interrupt",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "an exception class this host does not name",
    }
}

/// The fault status code (DFSC/IFSC) of an abort in words.
fn fault_status(fsc: u64) -> String {
    let level = fsc & 3;
    match fsc {
        0x00..=0x03 => format!("address size fault at level {level}"),
        0x04..=0x07 => format!("translation fault at level {level} (address not mapped)"),
        0x09..=0x0b => format!("access flag fault at level {level}"),
        0x0d..=0x0f => format!("permission fault at level {level}"),
        0x10 => "synchronous external abort".into(),
        0x21 => "alignment fault".into(),
        0x30 => "TLB conflict abort".into(),
        _ => format!("fault status {fsc:#x}"),
    }
}

/// Where `addr` lies in the firmware: `function+0xoff`, if the symbol table says.
fn symbolize(elf: Option<&ElfFile>, addr: u64) -> String {
    match elf.and_then(|e| e.function_at(addr)) {
        Some((name, off)) => format!(" in {name}+{off:#x}"),
        None => String::new(),
    }
}

/// The fault record in words, naming vector, ESR, ELR, FAR and core.
pub fn describe_fault(f: &EmuFaultRecord, elf: Option<&ElfFile>) -> String {
    let ec = (f.esr >> 26) & 0x3f;
    let iss = f.esr & 0x01ff_ffff;
    let mut syndrome = format!("ESR {:#x}: {} (EC {ec:#04x})", f.esr, exception_class(ec));
    if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
        syndrome.push_str(&format!(", {}", fault_status(iss & 0x3f)));
        if matches!(ec, 0x24 | 0x25) {
            syndrome.push_str(if iss & (1 << 6) != 0 { ", on a write" } else { ", on a read" });
        }
    }
    let launch = match f.launch_seq {
        0 => "outside any launch".to_string(),
        n => format!("while running launch {n}"),
    };
    format!(
        "vCPU {} took a {} from {} (vector {}): {syndrome}; faulting instruction ELR {:#x}{}; faulting \
         address FAR {:#x}; {launch}",
        f.core,
        vector_kind(f.vector),
        vector_group(f.vector),
        f.vector,
        f.elr,
        symbolize(elf, f.elr),
        f.far,
    )
}

/// The panic record in words: core, file:line:column, message.
pub fn describe_panic(p: &EmuPanicRecord) -> String {
    let file_len = (p.file_len as usize).min(EMU_PANIC_FILE_BYTES);
    let msg_len = (p.message_len as usize).min(EMU_PANIC_MESSAGE_BYTES);
    let file = String::from_utf8_lossy(&p.file[..file_len]);
    let message = String::from_utf8_lossy(&p.message[..msg_len]);
    let file = if file.is_empty() { "an unknown location".into() } else { file };
    let launch = match p.launch_seq {
        0 => "outside any launch".to_string(),
        n => format!("while running launch {n}"),
    };
    format!("vCPU {} panicked at {file}:{}:{}: {message} ({launch})", p.core, p.line, p.column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn a_data_abort_is_named_in_words() {
        let mut f = EmuFaultRecord::new_zeroed();
        f.valid = 1;
        f.core = 3;
        f.vector = 4;
        // EC 0x25 (data abort, same EL), WnR = 0, DFSC 0x06 (translation fault level 2).
        f.esr = (0x25 << 26) | (1 << 25) | 0x06;
        f.elr = 0x4020_1234;
        f.far = 0xdead_0000;
        f.launch_seq = 7;
        let s = describe_fault(&f, None);
        for part in [
            "vCPU 3",
            "synchronous exception from the current EL with SP_ELx (vector 4)",
            "data abort at the current EL",
            "translation fault at level 2 (address not mapped), on a read",
            "ELR 0x40201234",
            "FAR 0xdead0000",
            "launch 7",
        ] {
            assert!(s.contains(part), "{part:?} missing in {s}");
        }
    }

    #[test]
    fn a_panic_names_its_location_and_message() {
        let mut p = EmuPanicRecord::new_zeroed();
        p.core = 1;
        p.line = 42;
        p.column = 5;
        p.file[..9].copy_from_slice(b"src/x.rs\0");
        p.file_len = 8;
        p.message[..4].copy_from_slice(b"boom");
        p.message_len = 4;
        p.launch_seq = 2;
        assert_eq!(describe_panic(&p), "vCPU 1 panicked at src/x.rs:42:5: boom (while running launch 2)");
    }
}
