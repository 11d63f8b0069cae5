//! `pto-aicpu-check SO`: a static aarch64 Linux loader (no libc) that loads the onboard AICPU
//! program the way the vendor's AICPU runtime does (maps its `PT_LOAD` segments, applies its
//! relocations, runs its initialisers, finds the two entries by name in its dynamic symbol table)
//! and calls them on argument blocks built here, checking each status: null, misaligned, wrong
//! entry name, a launch descriptor with the wrong magic or fingerprint, a bad thread count, an
//! unknown orchestration, and the block-index claim word. Run under `qemu-aarch64` user mode; exit
//! status 0 when every check holds, else the number of the first failed check. On other targets it
//! is a stub that says how to build it.
#![cfg_attr(all(target_arch = "aarch64", target_os = "linux"), no_std, no_main)]

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod check {
    use core::ffi::c_void;

    use pto_abi::launch::{KernelArgs, LaunchDescriptor, LAUNCH_MAGIC};
    use pto_abi::DevAddr;
    use pto_device::onboard::{launch_block, AicpuLaunchArgs, AicpuStatus, AICPU_EXEC_ENTRY, AICPU_INIT_ENTRY};
    use zerocopy::FromZeros;

    core::arch::global_asm!(
        r#"
        .text
        .global _start
        .type _start, %function
    _start:
        mov     x0, sp
        and     sp, x0, #~15
        bl      pto_check_main
        mov     x8, #94
        svc     #0
    1:  b       1b
        "#
    );

    unsafe fn syscall6(n: u64, a: [u64; 6]) -> i64 {
        let r: i64;
        // SAFETY: a Linux system call; the caller passes arguments valid for `n`.
        unsafe {
            core::arch::asm!("svc #0", in("x8") n, inlateout("x0") a[0] as i64 => r, in("x1") a[1], in("x2") a[2],
                in("x3") a[3], in("x4") a[4], in("x5") a[5], options(nostack));
        }
        r
    }

    fn write(s: &[u8]) {
        // SAFETY: write(1, s, len) reads `s` only.
        unsafe { syscall6(64, [1, s.as_ptr() as u64, s.len() as u64, 0, 0, 0]) };
    }

    fn say(parts: &[&str]) {
        for p in parts {
            write(p.as_bytes());
        }
        write(b"\n");
    }

    fn fail(code: i32, what: &str) -> i32 {
        say(&["pto-aicpu-check: FAILED: ", what]);
        code
    }

    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const R_AARCH64_RELATIVE: u32 = 1027;

    fn rd<T: Copy>(p: u64) -> T {
        // SAFETY: `p` lies in the file mapping or the loaded image, both checked by the caller.
        unsafe { core::ptr::read_unaligned(p as usize as *const T) }
    }

    type Entry = unsafe extern "C" fn(*mut c_void) -> i32;

    /// Loads the shared object at `path` (NUL-terminated); returns its base and entries.
    fn load(path: *const u8) -> Result<(Entry, Entry), &'static str> {
        // SAFETY: openat(AT_FDCWD, path, O_RDONLY).
        let fd = unsafe { syscall6(56, [(-100i64) as u64, path as u64, 0, 0, 0, 0]) };
        if fd < 0 {
            return Err("cannot open the shared object");
        }
        // SAFETY: lseek(fd, 0, SEEK_END): the file's size.
        let size = unsafe { syscall6(62, [fd as u64, 0, 2, 0, 0, 0]) };
        if size < 64 {
            return Err("the file is shorter than an ELF header");
        }
        // SAFETY: mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0).
        let file = unsafe { syscall6(222, [0, size as u64, 1, 2, fd as u64, 0]) };
        if file < 0 {
            return Err("cannot map the file");
        }
        let (file, size) = (file as u64, size as u64);
        if rd::<[u8; 4]>(file) != *b"\x7fELF" || rd::<u16>(file + 18) != 183 {
            return Err("not an aarch64 ELF file");
        }
        let (phoff, phnum) = (rd::<u64>(file + 32), rd::<u16>(file + 56) as u64);
        if phoff.checked_add(phnum * 56).is_none_or(|e| e > size) {
            return Err("program headers outside the file");
        }
        let ph = |i: u64| file + phoff + i * 56;
        let mut span = 0u64;
        let mut dynamic = None;
        for i in 0..phnum {
            let (kind, vaddr, memsz) = (rd::<u32>(ph(i)), rd::<u64>(ph(i) + 16), rd::<u64>(ph(i) + 40));
            if kind == PT_LOAD {
                span = span.max(vaddr.saturating_add(memsz));
            } else if kind == PT_DYNAMIC {
                dynamic = Some(vaddr);
            }
        }
        let span = span.next_multiple_of(4096);
        // SAFETY: mmap(NULL, span, RWX, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0).
        let base = unsafe { syscall6(222, [0, span, 7, 0x22, u64::MAX, 0]) };
        if base < 0 {
            return Err("cannot map the image");
        }
        let base = base as u64;
        for i in 0..phnum {
            if rd::<u32>(ph(i)) != PT_LOAD {
                continue;
            }
            let (off, vaddr, filesz) = (rd::<u64>(ph(i) + 8), rd::<u64>(ph(i) + 16), rd::<u64>(ph(i) + 32));
            if off.checked_add(filesz).is_none_or(|e| e > size) || vaddr.checked_add(filesz).is_none_or(|e| e > span) {
                return Err("a segment lies outside the file or the image");
            }
            // SAFETY: both ranges were checked above; the image mapping is fresh.
            unsafe {
                core::ptr::copy_nonoverlapping((file + off) as *const u8, (base + vaddr) as *mut u8, filesz as usize)
            };
        }
        let dynamic = dynamic.ok_or("no PT_DYNAMIC segment")?;
        let (mut rela, mut relasz, mut symtab, mut strtab, mut hash, mut init, mut initsz) = (0, 0, 0, 0, 0, 0, 0);
        let mut d = base + dynamic;
        loop {
            let (tag, val) = (rd::<u64>(d), rd::<u64>(d + 8));
            match tag {
                0 => break,
                4 => hash = val,
                5 => strtab = val,
                6 => symtab = val,
                7 => rela = val,
                8 => relasz = val,
                23 => return Err("the object has PLT relocations (an imported function)"),
                25 => init = val,
                27 => initsz = val,
                _ => {}
            }
            d += 16;
        }
        let mut r = 0;
        while r < relasz {
            let (off, info, addend) =
                (rd::<u64>(base + rela + r), rd::<u64>(base + rela + r + 8), rd::<u64>(base + rela + r + 16));
            if info as u32 != R_AARCH64_RELATIVE || off >= span {
                return Err("a relocation other than R_AARCH64_RELATIVE inside the image");
            }
            // SAFETY: `off` lies in the image (checked).
            unsafe { ((base + off) as *mut u64).write_unaligned(base.wrapping_add(addend)) };
            r += 24;
        }
        let mut i = 0;
        while i < initsz {
            let f: u64 = rd(base + init + i);
            // SAFETY: the object's own initialiser, relocated above.
            unsafe { core::mem::transmute::<u64, unsafe extern "C" fn()>(f)() };
            i += 8;
        }
        if hash == 0 || symtab == 0 || strtab == 0 {
            return Err("no DT_HASH, DT_SYMTAB or DT_STRTAB");
        }
        let nsyms = rd::<u32>(base + hash + 4) as u64;
        let find = |want: &str| -> Option<Entry> {
            for s in 0..nsyms {
                let sym = base + symtab + s * 24;
                let (name, value) = (rd::<u32>(sym) as u64, rd::<u64>(sym + 8));
                let mut k = 0;
                let w = want.as_bytes();
                while k < w.len() && rd::<u8>(base + strtab + name + k as u64) == w[k] {
                    k += 1;
                }
                if k == w.len() && rd::<u8>(base + strtab + name + k as u64) == 0 && value != 0 {
                    // SAFETY: the address of a function symbol of the loaded object.
                    return Some(unsafe { core::mem::transmute::<u64, Entry>(base + value) });
                }
            }
            None
        };
        let init = find(AICPU_INIT_ENTRY).ok_or("pto_aicpu_init is not exported")?;
        let exec = find(AICPU_EXEC_ENTRY).ok_or("pto_aicpu_exec is not exported")?;
        Ok((init, exec))
    }

    // SAFETY: KernelArgs is plain integers (FromZeros): all zeroes is a valid value.
    static mut KERNEL_ARGS: KernelArgs = unsafe { core::mem::zeroed() };
    // SAFETY: LaunchDescriptor is plain integers (FromZeros): all zeroes is a valid value.
    static mut DESC: LaunchDescriptor = unsafe { core::mem::zeroed() };
    static PROGRAM: [u8; 16] = [0x7f; 16];

    #[no_mangle]
    extern "C" fn pto_check_main(sp: *const u64) -> i32 {
        // SAFETY: the kernel's initial stack: argc, then argv.
        let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
        if argc < 2 {
            return fail(100, "usage: pto-aicpu-check libpto_aicpu.so");
        }
        // SAFETY: argv[1] exists (argc >= 2).
        let (init, exec) = match load(unsafe { *argv.add(1) }) {
            Ok(e) => e,
            Err(why) => return fail(101, why),
        };
        say(&["pto-aicpu-check: loaded; ", AICPU_INIT_ENTRY, " and ", AICPU_EXEC_ENTRY, " resolved"]);
        let desc = core::ptr::addr_of_mut!(DESC);
        let ka = core::ptr::addr_of_mut!(KERNEL_ARGS);
        // SAFETY: this single-threaded program's own statics.
        unsafe {
            *desc = LaunchDescriptor::new_zeroed();
            (*ka).runtime_desc = DevAddr(desc as u64);
        }
        let block = |entry| launch_block(entry, DevAddr(ka as u64), PROGRAM.as_ptr() as u64, PROGRAM.len() as u64);
        let call = |f: Entry, b: *mut c_void| -> Option<AicpuStatus> {
            // SAFETY: the object's entry, on null or a block of this program's memory.
            AicpuStatus::from_code(unsafe { f(b) })
        };
        let expect = |got: Option<AicpuStatus>, want: AicpuStatus, what: &str| -> bool {
            if got == Some(want) {
                say(&["  ok: ", what, " -> ", want.name()]);
                true
            } else {
                say(&["  FAILED: ", what, " should be ", want.name(), ", is ", got.map_or("no status", |s| s.name())]);
                false
            }
        };
        let mut raw = [0u64; 32];
        let odd = (raw.as_mut_ptr() as *mut u8).wrapping_add(4).cast::<c_void>();
        let mut b = block(AICPU_EXEC_ENTRY);
        let bp: *mut c_void = (&mut b as *mut AicpuLaunchArgs).cast();
        let ok = [
            expect(call(init, core::ptr::null_mut()), AicpuStatus::NullArgs, "init(NULL)"),
            expect(call(exec, odd), AicpuStatus::MisalignedArgs, "exec(misaligned)"),
            expect(call(init, bp), AicpuStatus::WrongEntry, "init on an exec block"),
            expect(call(exec, bp), AicpuStatus::BadLaunchMagic, "descriptor magic 0"),
        ];
        if ok.contains(&false) {
            return 1;
        }
        // SAFETY: this program's own descriptor, between calls.
        unsafe { (*desc).magic = LAUNCH_MAGIC };
        let fp = expect(call(exec, bp), AicpuStatus::BadFingerprint, "fingerprint 0");
        // SAFETY: as above.
        unsafe { (*desc).abi_fingerprint = pto_abi::ABI_FINGERPRINT };
        let threads = expect(call(exec, bp), AicpuStatus::BadThreadCount, "0 threads");
        // SAFETY: as above.
        unsafe { (*desc).aicpu_thread_count = 1 };
        let orch = expect(call(exec, bp), AicpuStatus::UnknownOrchestration, "orchestration 0 (thread 0 claimed)");
        let extra = expect(call(exec, bp), AicpuStatus::Ok, "a block beyond the thread count");
        if !(fp && threads && orch && extra) {
            return 2;
        }
        // SAFETY: the block above, read after the calls.
        if unsafe { (*bp.cast::<AicpuLaunchArgs>()).reserved } != 2 {
            return fail(3, "the claim word does not count the two blocks that claimed an index");
        }
        say(&["pto-aicpu-check: all checks passed"]);
        0
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        write(b"pto-aicpu-check: panic\n");
        loop {
            // SAFETY: exit_group(99).
            unsafe { syscall6(94, [99, 0, 0, 0, 0, 0]) };
        }
    }

    // The loader brings its own memory functions, like the object it loads.
    core::arch::global_asm!(include_str!("../mem.S"));
}

/// Host builds: the check only exists for `aarch64-unknown-linux-gnu`.
#[cfg(not(all(target_arch = "aarch64", target_os = "linux")))]
fn main() {
    eprintln!(
        "pto-aicpu-check loads libpto_aicpu.so on aarch64 Linux; build it with `cargo aicpu-build` and run \
         qemu-aarch64 target/aarch64-unknown-linux-gnu/release/pto-aicpu-check \
         target/aarch64-unknown-linux-gnu/release/libpto_aicpu.so"
    );
    std::process::exit(2);
}
