/* Shared by the fuzz targets and the replay driver: the libFuzzer entry
 * point, declared once so -Wmissing-prototypes holds in every file that
 * defines or calls it. */
#ifndef LATCH_FUZZ_H
#define LATCH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
