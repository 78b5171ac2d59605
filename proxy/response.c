/* response: stub, being written */
#include "response.h"
#include "response.h"
