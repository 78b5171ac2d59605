/* worker: stub, being written */
#include "worker.h"
#include "worker.h"
