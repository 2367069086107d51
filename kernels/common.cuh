// iplap kernels — what every kernel header shares: the qualifiers and fixed-width types that let one
// header compile twice, as CUDA C++ by NVRTC (the GPU) and as C++17 by the host compiler (the `cc`
// crate, for the CPU tests that hold each kernel's maths to the bit-exact Rust code).
//
// NVRTC has no <stdint.h> or <math.h>; both builds use the types and built-ins below only.
// Both builds keep multiply-adds apart (NVRTC `--fmad=false`, gcc `-ffp-contract=off`), so float
// maths rounds the same way on both sides.
#pragma once

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define IPLAP_DEVICE_BUILD 1
// Per-pixel maths: callable from kernels and (in the host build) from plain loops.
#define IPLAP_HD __host__ __device__ __forceinline__
#else
#define IPLAP_DEVICE_BUILD 0
#define IPLAP_HD inline
#include <math.h>
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

IPLAP_HD i32 iplap_min_i32(i32 a, i32 b) { return a < b ? a : b; }
IPLAP_HD i32 iplap_max_i32(i32 a, i32 b) { return a > b ? a : b; }
IPLAP_HD i64 iplap_min_i64(i64 a, i64 b) { return a < b ? a : b; }
IPLAP_HD i64 iplap_max_i64(i64 a, i64 b) { return a > b ? a : b; }
IPLAP_HD i32 iplap_clamp_i32(i32 v, i32 lo, i32 hi) { return v < lo ? lo : (v > hi ? hi : v); }
IPLAP_HD u8 iplap_saturate_u8(i32 v) { return (u8)(v < 0 ? 0 : (v > 255 ? 255 : v)); }
// floorf / floor are built into NVRTC and come from <math.h> on the host.
IPLAP_HD float iplap_floorf(float v) { return floorf(v); }
IPLAP_HD double iplap_floor(double v) { return floor(v); }
