#ifndef TIERD_CNUMA_SHIM_H
#define TIERD_CNUMA_SHIM_H
#include <numa.h>
#include <numaif.h>
#endif
