/* One copy of each kernel per instruction set, chosen when the program starts.
 *
 * gcc's target_clones compiles a function three times, for x86-64-v4 (AVX-512),
 * x86-64-v3 (AVX2 + FMA) and the baseline, and calls the best one the CPU
 * supports; a wheel built on one machine then runs fast on all of them.
 *
 * Building with MINICNN_SINGLE_TARGET defined (setup.py does it when the
 * environment variable MINICNN_SINGLE_TARGET names an -march, e.g. x86-64-v3)
 * makes one copy for that instruction set only: the way to test the AVX2 or
 * baseline code on a machine that would otherwise always pick AVX-512.
 */
#ifndef MINICNN_MULTIVERSION_H
#define MINICNN_MULTIVERSION_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(MINICNN_SINGLE_TARGET)
#define MINICNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define MINICNN_CLONES_AVX2_AND_BASELINE __attribute__((target_clones("arch=x86-64-v3", "default")))
#define MINICNN_CLONES_ENABLED 1
#else
#define MINICNN_CLONES
#define MINICNN_CLONES_AVX2_AND_BASELINE
#define MINICNN_CLONES_ENABLED 0
#endif

#endif
