//! kestrel-kernels: the CPU compute under kestrel's fast inference path.
//!
//! Everything works on NHWC `f32` slices. NHWC keeps each pixel's channels contiguous, so a
//! convolution is an *indirect GEMM* (XNNPACK's igemm): every output pixel is a row, every kernel
//! tap contributes a pointer to an input pixel's channel vector, and no im2col buffer is ever
//! written. Weights are packed once into the microkernel's panel layout, and each kernel's
//! epilogue applies the bias (folded BatchNorm), the activation and the residual add while the
//! output tile is still in registers, so a conv+BN+act(+add) block is one pass over memory.
//! The inference engine's 3×3 stride-1 convs run as Winograd F(2×2, 3×3) where it pays
//! ([`Conv2d::for_inference`]): 16 GEMMs on the same microkernel between two transforms.
//!
//! Kernels are picked at run time by [`Isa::detect`]: an AVX2+FMA microkernel where the CPU has
//! it, a portable scalar one elsewhere. `KESTREL_ISA=scalar` forces the portable path, so tests
//! check both on any machine.

pub mod act;
pub mod attention;
pub mod batch_norm;
pub mod conv;
pub mod conv_train;
pub mod depthwise;
pub mod gemm;
pub mod int8;
pub mod norm;
pub mod pool2d;
pub mod threads;
pub mod winograd;

pub use act::Act;
pub use conv::{Conv2d, ConvGeometry};
pub use int8::QConv2d;
pub use threads::{num_threads, set_num_threads};

use std::sync::OnceLock;

/// The instruction set a kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, any CPU.
    Scalar,
    /// x86-64 with AVX2 and FMA (Haswell / Zen and later).
    Avx2,
}

impl Isa {
    /// The best instruction set this CPU supports, unless `KESTREL_ISA` (`scalar`, `avx2`)
    /// asks for a lower one. Read once per process.
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Isa::best_supported();
            match std::env::var("KESTREL_ISA").ok().as_deref() {
                Some("scalar") => Isa::Scalar,
                Some("avx2") if best == Isa::Avx2 => Isa::Avx2,
                _ => best,
            }
        })
    }

    fn best_supported() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2+fma",
        }
    }
}

/// Whether the kernels that have an AVX-512F variant (the GEMM, the weight-gradient outer
/// products) run it: AVX2 is the ISA in use (not forced to scalar), the CPU has AVX-512F, and
/// `KESTREL_ISA` does not ask for `avx2`. Each variant sums in its AVX2 kernel's order, so the
/// results are the same bits. Read once per process.
pub fn avx512() -> bool {
    static AVX512: OnceLock<bool> = OnceLock::new();
    *AVX512.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            Isa::detect() == Isa::Avx2
                && std::env::var("KESTREL_ISA").ok().as_deref() != Some("avx2")
                && std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Whether the int8 GEMM uses its AVX-512 VNNI kernel: as [`avx512`], and the CPU has
/// AVX-512BW and VNNI. The integers are the same as the AVX2 kernel's. Read once per process.
pub fn avx512_vnni() -> bool {
    static VNNI: OnceLock<bool> = OnceLock::new();
    *VNNI.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            avx512()
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// A raw pointer that may cross threads. The kernels hand disjoint output tiles to different
/// threads; each use site states why its accesses do not overlap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendPtr<T>(pub *mut T);

/// A vector of `len` floats that `write` initialises completely, without zeroing it first: a
/// memset of every output before the kernel overwrites it was ~10% of a small-image training
/// step.
///
/// # Safety
/// `write` must write all `len` elements through the pointer it gets, and read none it has not
/// written.
pub(crate) unsafe fn written_vec(len: usize, write: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut v = Vec::<f32>::with_capacity(len);
    write(v.as_mut_ptr());
    v.set_len(len);
    v
}
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SendConstPtr<T>(pub *const T);
unsafe impl<T> Send for SendConstPtr<T> {}
unsafe impl<T> Sync for SendConstPtr<T> {}

/// A global allocator that puts every block of at least 4 KiB on a 64-byte (cache-line)
/// boundary, and leaves smaller ones to the system allocator as they are. glibc's large
/// blocks start 16 bytes into a page, so every 64-byte load of an activation row otherwise
/// spans two cache lines. Install it in a binary with
/// `#[global_allocator] static A: kestrel_kernels::CacheLineAligned = kestrel_kernels::CacheLineAligned;`.
pub struct CacheLineAligned;

impl CacheLineAligned {
    const MIN_SIZE: usize = 4096;

    fn layout(l: std::alloc::Layout) -> std::alloc::Layout {
        if l.size() >= Self::MIN_SIZE && l.align() < 64 {
            // Fails only for a size within 64 bytes of isize::MAX, which keeps its alignment.
            std::alloc::Layout::from_size_align(l.size(), 64).unwrap_or(l)
        } else {
            l
        }
    }
}

// SAFETY: every method forwards to `System` with the layout `CacheLineAligned::layout` derives
// from the caller's, a function of size and alignment only, so a block is always freed with
// the layout it was allocated with.
unsafe impl std::alloc::GlobalAlloc for CacheLineAligned {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        std::alloc::System.alloc(Self::layout(l))
    }

    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        std::alloc::System.alloc_zeroed(Self::layout(l))
    }

    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        std::alloc::System.dealloc(p, Self::layout(l))
    }

    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` is a valid size for `l.align()` (the caller's contract).
        let new = std::alloc::Layout::from_size_align_unchecked(new_size, l.align());
        let (old_l, new_l) = (Self::layout(l), Self::layout(new));
        if old_l.align() == new_l.align() {
            return std::alloc::System.realloc(p, old_l, new_size);
        }
        let q = std::alloc::System.alloc(new_l);
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            std::alloc::System.dealloc(p, old_l);
        }
        q
    }
}

#[cfg(test)]
mod alloc_tests {
    use super::CacheLineAligned;
    use std::alloc::{GlobalAlloc, Layout};

    /// Large blocks come back 64-byte aligned, keep their contents across a realloc that
    /// crosses the size threshold either way, and small ones keep their own alignment.
    #[test]
    fn large_blocks_are_cache_line_aligned() {
        let a = CacheLineAligned;
        unsafe {
            for size in [4096usize, 5000, 1 << 20, 3 << 20] {
                let l = Layout::from_size_align(size, 4).unwrap();
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % 64, 0, "{size} bytes");
                a.dealloc(p, l);
            }
            let small = Layout::from_size_align(100, 4).unwrap();
            let p = a.alloc(small);
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            // Grow past the threshold, then shrink back under it.
            let p = a.realloc(p, small, 10_000);
            assert_eq!(p as usize % 64, 0);
            assert!((0..100).all(|i| *p.add(i) == i as u8));
            let big = Layout::from_size_align(10_000, 4).unwrap();
            let p = a.realloc(p, big, 50);
            assert!((0..50).all(|i| *p.add(i) == i as u8));
            a.dealloc(p, Layout::from_size_align(50, 4).unwrap());
        }
    }
}

/// What the kernels' unit tests share.
#[cfg(test)]
pub(crate) mod test_util {
    /// A deterministic value in [-0.5, 0.5) from a 64-bit LCG: the tests' inputs.
    pub fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// Whether this CPU runs both the AVX-512 and the AVX2 kernels, whatever `KESTREL_ISA`
    /// says (the bit-identity tests call both directly); says so when it does not.
    #[cfg(target_arch = "x86_64")]
    pub fn avx512_and_avx2() -> bool {
        let yes = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if !yes {
            eprintln!("no AVX-512F on this CPU: nothing to compare");
        }
        yes
    }
}
