#pragma once

namespace l2m {

// `l2m models import FILE [--name N] | list`: the local model cache.
int RunModelsCommand(int argc, char** argv);

}  // namespace l2m
