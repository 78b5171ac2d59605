/* http1: stub, being written */
#include "http1.h"
#include "http1.h"
