/* One copy of each kernel per instruction set, chosen when the program starts.
 *
 * Three instruction-set levels, each with its own register blocking:
 *
 *   x86-64-v4  AVX-512: 32 registers of 16 floats (zmm). The shapes the kernels were tuned with
 *              on AMD Zen 4 (8-20 accumulators of 16 floats).
 *   x86-64-v3  AVX2 + FMA: 16 registers of 8 floats (ymm). Blockings whose accumulators, loaded
 *              vectors and broadcasts fit those 16 registers (8-float vectors, 8-12 accumulators).
 *   x86-64     the baseline, SSE2: 16 registers of 4 floats (xmm), no FMA. The AVX2 blockings with
 *              4-float vectors (on other processors, e.g. aarch64, NEON's 128-bit registers).
 *
 * A kernel whose blocking differs by level is written once as a macro and instantiated three
 * times, NAME_v4 with __attribute__((target("arch=x86-64-v4"))), NAME_v3 with
 * target("arch=x86-64-v3") and NAME_base with no attribute; NAME itself is a dispatcher that
 * calls the copy for minicnn_isa(), the best level this CPU supports (looked up once with
 * __builtin_cpu_supports and cached). gcc's target_clones could not do this: it compiles ONE
 * source for every level, so a 16-float vector became two ymm halves (and spilled) on AVX2.
 * The number of lanes a kernel uses (pixels or images per vector) can therefore differ by level;
 * each header has functions that tell it at run time (minicnn_row_lanes(), ...), and conv2d.pyx
 * passes them on to Python (row_lanes(), lanes_group(), rows_weight_grad_lanes()).
 *
 * Building with MINICNN_SINGLE_TARGET defined (setup.py does it when the environment variable
 * MINICNN_SINGLE_TARGET names an -march, e.g. x86-64-v3), with another compiler than gcc, or for
 * another processor than x86-64, makes ONE plain copy of each kernel, whose blocking is chosen
 * from the compiler's predefined macros (__AVX512F__..., __AVX2__): the way to test the AVX2 or
 * baseline code on a machine that would otherwise always pick AVX-512. minicnn_isa() then
 * returns the compiled level, and minicnn_isa_name() its name.
 *
 * Nothing here is x86-only outside `defined(__x86_64__)`: aarch64 builds (see
 * .ci/aarch64_kernels.sh) get the baseline blockings.
 */
#ifndef MINICNN_MULTIVERSION_H
#define MINICNN_MULTIVERSION_H

#define MINICNN_ISA_BASE 0
#define MINICNN_ISA_V3 1
#define MINICNN_ISA_V4 2

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(MINICNN_SINGLE_TARGET)
#define MINICNN_DISPATCH 1
/* per-level copies (the blockings differ) */
#define MINICNN_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define MINICNN_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
/* one source, one copy per level (kernels whose code suits every level: pool_2x2.h) */
#define MINICNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define MINICNN_CLONES_ENABLED 1
#else
#define MINICNN_DISPATCH 0
#define MINICNN_TARGET_V4
#define MINICNN_TARGET_V3
#define MINICNN_CLONES
#define MINICNN_CLONES_ENABLED 0
#endif

/* The level one plain copy is compiled for (the level of the predefined macros). */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define MINICNN_ISA_COMPILED MINICNN_ISA_V4
#define MINICNN_ISA_TOKEN V4
#elif defined(__AVX2__) && defined(__FMA__)
#define MINICNN_ISA_COMPILED MINICNN_ISA_V3
#define MINICNN_ISA_TOKEN V3
#else
#define MINICNN_ISA_COMPILED MINICNN_ISA_BASE
#define MINICNN_ISA_TOKEN BASE
#endif

/* The level whose copies run: the best this CPU supports (dispatching builds), else the compiled one. */
static inline int minicnn_isa(void)
{
#if MINICNN_DISPATCH
    static int level = -1; /* cached; every thread that races here computes and stores the same value */
    int isa = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (isa < 0) {
        __builtin_cpu_init();
        isa = __builtin_cpu_supports("x86-64-v4")   ? MINICNN_ISA_V4
              : __builtin_cpu_supports("x86-64-v3") ? MINICNN_ISA_V3
                                                    : MINICNN_ISA_BASE;
        __atomic_store_n(&level, isa, __ATOMIC_RELAXED);
    }
    return isa;
#else
    return MINICNN_ISA_COMPILED;
#endif
}

/* "x86-64-v4", "x86-64-v3", "x86-64" (the baseline), or the processor of a non-x86 build. */
static inline const char *minicnn_isa_name(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    switch (minicnn_isa()) {
    case MINICNN_ISA_V4: return "x86-64-v4";
    case MINICNN_ISA_V3: return "x86-64-v3";
    default: return "x86-64";
    }
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "generic";
#endif
}

/* A value that depends on the level: V4, V3 or BASE (for lane counts reported at run time). */
#define MINICNN_BY_ISA(V4, V3, BASE) \
    (minicnn_isa() == MINICNN_ISA_V4 ? (V4) : minicnn_isa() == MINICNN_ISA_V3 ? (V3) : (BASE))

/* MINICNN_INSTANTIATE(DEF, NAME, PARAMS, ARGS): the copies of one kernel and its dispatcher.
 * DEF(FNAME, ATTR, LEVEL) defines `static void FNAME PARAMS` with the blocking of LEVEL (the
 * token V4, V3 or BASE, which DEF pastes onto its shape macros: MINICNN_..._SHAPE_##LEVEL) and
 * the function attribute ATTR; PARAMS is the parenthesised parameter list and ARGS the
 * parenthesised argument list that forwards it. */
#if MINICNN_DISPATCH
#define MINICNN_INSTANTIATE(DEF, NAME, PARAMS, ARGS)                       \
    DEF(NAME##_v4, MINICNN_TARGET_V4, V4)                                   \
    DEF(NAME##_v3, MINICNN_TARGET_V3, V3)                                   \
    DEF(NAME##_base, , BASE)                                                \
    static void NAME PARAMS                                                 \
    {                                                                       \
        switch (minicnn_isa()) {                                            \
        case MINICNN_ISA_V4: NAME##_v4 ARGS; return;                        \
        case MINICNN_ISA_V3: NAME##_v3 ARGS; return;                        \
        default: NAME##_base ARGS; return;                                  \
        }                                                                   \
    }
#else
#define MINICNN_INSTANTIATE(DEF, NAME, PARAMS, ARGS) MINICNN_INSTANTIATE_ONE(DEF, NAME, MINICNN_ISA_TOKEN)
#define MINICNN_INSTANTIATE_ONE(DEF, NAME, LEVEL) DEF(NAME, , LEVEL) /* LEVEL expanded to V4, V3 or BASE */
#endif

#endif
