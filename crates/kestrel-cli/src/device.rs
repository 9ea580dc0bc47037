//! `--device`: which backend runs the model, and `kestrel devices`, the adapters it can pick.
//!
//! The CPU (burn's flex backend) and wgpu (Vulkan, Metal, DX12 or GL) are in every build; CUDA
//! only in builds with the `cuda` feature. `wgpu:N` is row N of `kestrel devices`, which lists
//! the adapters of the graphics API burn's wgpu runtime settles on, in its order.

use anyhow::{anyhow, bail, Result};
use burn::prelude::Device;
use burn::tensor::DeviceKind;
use serde::Serialize;

pub const DEVICE_HELP: &str = "cpu (burn's flex backend, default), wgpu (the best GPU adapter; `kestrel devices` lists them), wgpu:N (row N of `kestrel devices`), cuda[:N] (needs --features cuda)";

pub fn parse_device(spec: &str) -> Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (
            k,
            Some(
                i.parse::<usize>()
                    .map_err(|_| anyhow!("--device {spec}: bad device index '{i}'"))?,
            ),
        ),
        None => (spec, None),
    };
    match kind.to_ascii_lowercase().as_str() {
        "cpu" | "flex" => Ok(Device::flex()),
        "wgpu" | "gpu" => wgpu_device(spec, index),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index.unwrap_or(0))),
        #[cfg(not(feature = "cuda"))]
        "cuda" => bail!(
            "--device {spec}: this kestrel binary was built without the 'cuda' backend; rebuild with `cargo build --release -p kestrel-cli --features cuda`, or use --device wgpu (`kestrel devices` lists the adapters)"
        ),
        other => bail!("--device {other}: unknown device; valid: {DEVICE_HELP}"),
    }
}

/// The wgpu device `spec` names, checked against the adapters this machine has, so that an
/// absent one is an error listing what there is instead of a panic deep in the runtime.
fn wgpu_device(spec: &str, index: Option<usize>) -> Result<Device> {
    let adapters = wgpu_adapters();
    let listing = || {
        let mut s = String::from("cpu");
        for a in &adapters {
            s.push_str(&format!(
                ", {} ({}, {})",
                a.info.spec, a.info.name, a.info.backend
            ));
        }
        s
    };
    if adapters.is_empty() {
        bail!(
            "--device {spec}: no GPU adapter is visible (no Vulkan, Metal, DX12 or GL driver answered; on Debian/Ubuntu `mesa-vulkan-drivers` gives a software Vulkan device); available: cpu"
        );
    }
    match index {
        None => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
        Some(n) => {
            let adapter = adapters.get(n).ok_or_else(|| {
                anyhow!(
                    "--device {spec}: there is no adapter {n}; available: {}",
                    listing()
                )
            })?;
            adapter.kind.clone().map(Device::wgpu).ok_or_else(|| {
                anyhow!(
                    "--device {spec}: adapter {n} ({}) is of a type burn cannot select; available: {}",
                    adapter.info.name,
                    listing()
                )
            })
        }
    }
}

/// One row of `kestrel devices`.
#[derive(Serialize, Debug, Clone)]
pub struct DeviceInfo {
    /// What `--device` takes to run on it.
    pub spec: String,
    /// `flex` for the CPU; the graphics API (`vulkan`, `metal`, `dx12`, `gl`) for wgpu.
    pub backend: String,
    pub name: String,
    /// `cpu`, `discrete-gpu`, `integrated-gpu`, `virtual-gpu`, or `software` (a CPU rasterizer
    /// such as Mesa's lavapipe).
    pub kind: String,
    pub driver: String,
    /// Device-local memory (system memory for the CPU); null where the API does not report it.
    pub memory_bytes: Option<u64>,
    /// CPU threads kestrel uses (the CPU row only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

struct WgpuAdapter {
    info: DeviceInfo,
    /// How burn addresses it; `None` for a type burn's `DeviceKind` has no variant for.
    kind: Option<DeviceKind>,
}

/// The CPU row: the model name and memory from /proc where there is one.
pub fn cpu_info() -> DeviceInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo.lines().find_map(|l| {
        let kb = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
        kb.trim().parse::<u64>().ok().map(|kb| kb * 1024)
    });
    DeviceInfo {
        spec: "cpu".into(),
        backend: "flex".into(),
        name,
        kind: "cpu".into(),
        driver: "burn-flex".into(),
        memory_bytes,
        threads: Some(rayon::current_num_threads()),
    }
}

/// Every device `--device` can pick here: the CPU first, then the wgpu adapters.
pub fn all_devices() -> Vec<DeviceInfo> {
    let mut out = vec![cpu_info()];
    out.extend(wgpu_adapters().into_iter().map(|a| a.info));
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::DeviceType;
        for (i, d) in Device::enumerate(DeviceType::Cuda)
            .into_vec()
            .into_iter()
            .enumerate()
        {
            let name = d.identity().map(|id| id.name).unwrap_or_default();
            out.push(DeviceInfo {
                spec: format!("cuda:{i}"),
                backend: "cuda".into(),
                name,
                kind: "discrete-gpu".into(),
                driver: "cuda".into(),
                memory_bytes: None,
                threads: None,
            });
        }
    }
    out
}

/// The graphics APIs burn's wgpu runtime tries, best first (cubecl-wgpu's `AutoGraphicsApi`).
fn api_candidates() -> Vec<wgpu::Backend> {
    if cfg!(target_os = "macos") {
        vec![wgpu::Backend::Metal]
    } else {
        vec![
            wgpu::Backend::Vulkan,
            wgpu::Backend::Dx12,
            wgpu::Backend::Gl,
        ]
    }
}

/// The adapters of the API burn settles on: the first with a hardware adapter, else the first
/// with any (a software rasterizer). Their order and per-type numbering are burn's, so that
/// row N maps to the `DeviceKind` burn resolves to the same adapter.
fn wgpu_adapters() -> Vec<WgpuAdapter> {
    quiet_display_probe();
    let mut software_only: Option<(wgpu::Instance, Vec<wgpu::Adapter>)> = None;
    let mut settled = None;
    for api in api_candidates() {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: api.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = block_on(instance.enumerate_adapters(api.into()));
        if adapters
            .iter()
            .any(|a| a.get_info().device_type != wgpu::DeviceType::Cpu)
        {
            settled = Some((instance, adapters));
            break;
        }
        if software_only.is_none() && !adapters.is_empty() {
            software_only = Some((instance, adapters));
        }
    }
    let Some((_instance, adapters)) = settled.or(software_only) else {
        return Vec::new();
    };
    // Per-type counters, as cubecl-wgpu numbers DiscreteGpu(i), IntegratedGpu(i), VirtualGpu(i).
    let (mut discrete, mut integrated, mut virtual_gpu) = (0, 0, 0);
    adapters
        .iter()
        .enumerate()
        .map(|(row, adapter)| {
            let info = adapter.get_info();
            let next = |counter: &mut usize| {
                *counter += 1;
                *counter - 1
            };
            let (kind, kind_name) = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => (
                    Some(DeviceKind::DiscreteGpu(next(&mut discrete))),
                    "discrete-gpu",
                ),
                wgpu::DeviceType::IntegratedGpu => (
                    Some(DeviceKind::IntegratedGpu(next(&mut integrated))),
                    "integrated-gpu",
                ),
                wgpu::DeviceType::VirtualGpu => (
                    Some(DeviceKind::VirtualGpu(next(&mut virtual_gpu))),
                    "virtual-gpu",
                ),
                wgpu::DeviceType::Cpu => (Some(DeviceKind::Cpu), "software"),
                wgpu::DeviceType::Other => (None, "other"),
            };
            let driver = if info.driver_info.is_empty() {
                info.driver.clone()
            } else {
                format!("{} {}", info.driver, info.driver_info)
            };
            WgpuAdapter {
                info: DeviceInfo {
                    spec: format!("wgpu:{row}"),
                    backend: info.backend.to_str().to_string(),
                    name: info.name.clone(),
                    kind: kind_name.into(),
                    driver: driver.trim().to_string(),
                    memory_bytes: device_local_memory(adapter),
                    threads: None,
                },
                kind,
            }
        })
        .collect()
}

/// The largest device-local memory heap, which Vulkan reports and wgpu does not.
fn device_local_memory(adapter: &wgpu::Adapter) -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "windows"))]
    {
        // SAFETY: the hal adapter is only read, while `adapter` (and its instance) live.
        let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
        let properties = unsafe {
            hal.shared_instance()
                .raw_instance()
                .get_physical_device_memory_properties(hal.raw_physical_device())
        };
        const DEVICE_LOCAL: u32 = 1; // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT
        properties
            .memory_heaps_as_slice()
            .iter()
            .filter(|h| h.flags.as_raw() & DEVICE_LOCAL != 0)
            .map(|h| h.size)
            .max()
    }
    #[cfg(not(any(target_os = "linux", target_os = "windows")))]
    {
        let _ = adapter;
        None
    }
}

/// wgpu's native futures are ready when first polled; this waits for them without a runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Without a desktop session (a server, a container, CI), libwayland, which the Vulkan and GL
/// loaders probe for a display, prints `error: XDG_RUNTIME_DIR is invalid or not set in the
/// environment.` Nothing is wrong: kestrel needs no display. Pointing the variable at a private
/// directory silences the probe; a session's own value is left alone, and real device errors
/// still come back through wgpu. Called before the first wgpu call, while the process has one
/// thread (`parse_device` runs first in every command).
fn quiet_display_probe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let set = std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|d| std::path::Path::new(&d).is_absolute());
        if set {
            return;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            // SAFETY: getuid cannot fail.
            let uid = unsafe { libc::getuid() };
            let dir = std::env::temp_dir().join(format!("kestrel-runtime-{uid}"));
            // 0700, as the XDG spec asks; an existing directory is reused.
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    });
}

/// A memory size for the `kestrel devices` table, in GiB.
pub fn format_memory(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        None => "-".into(),
    }
}

pub use kestrel_train::Precision;

/// The `--precision` flag of the commands that run a model.
#[derive(clap::Args, Debug, Clone)]
pub struct PrecisionArgs {
    /// Float type on a GPU device: f32 (default), f16 or bf16, where the device supports it
    /// (lavapipe and most GPUs have f16; bf16 needs a GPU whose wgpu/CUDA kernels offer it).
    /// Weights are loaded as f32 and converted; logits are read back as f32. The CPU computes
    /// in f32 (for int8 there, see `kestrel quantize`).
    #[arg(long, default_value = "f32", value_name = "f32|f16|bf16")]
    pub precision: Precision,
}

impl PrecisionArgs {
    /// Makes `--precision` the default float type of `device` (`spec` is its `--device`), before
    /// any tensor is created on it. A type the device lacks is an error naming both.
    pub fn configure(&self, device: &mut Device, spec: &str) -> Result<()> {
        let p = self.precision;
        let Some(dtype) = p.half_dtype() else {
            return Ok(());
        };
        if let Some(why) = p.unsupported_on(device) {
            bail!("--precision {p} on --device {spec}: {why}");
        }
        device
            .configure(dtype)
            .map_err(|e| anyhow!("--precision {p} on --device {spec}: {e:?}"))
    }
}
