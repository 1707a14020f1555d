# Small helpers in the spirit of COLMAP's COLMAP_ADD_LIBRARY / COLMAP_ADD_TEST.

# l2m_add_library(NAME name SRCS ... [PUBLIC_LINK_LIBS ...] [PRIVATE_LINK_LIBS ...] [TORCH_PCH])
function(l2m_add_library)
  cmake_parse_arguments(ARG "TORCH_PCH" "NAME" "SRCS;PUBLIC_LINK_LIBS;PRIVATE_LINK_LIBS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_PUBLIC_LINK_LIBS} PRIVATE ${ARG_PRIVATE_LINK_LIBS})
  if(ARG_TORCH_PCH)
    l2m_use_torch_pch(${ARG_NAME})
  endif()
endfunction()

# l2m_add_cuda_kernels(TARGET lib NAME lib_cuda SRCS file.cu ...)
# CUDA kernels of `lib`, where LibTorch has CUDA and nvcc is around (the GPU
# machine): a static library linked into `lib`, which then compiles with
# L2M_HAVE_CUDA_KERNELS. Elsewhere (Debian's CPU LibTorch, CI) nothing, and
# `lib` keeps its LibTorch-only paths.
set(L2M_CUDA_ARCHITECTURES "90" CACHE STRING "CUDA architectures of l2m's kernels")
function(l2m_add_cuda_kernels)
  cmake_parse_arguments(ARG "" "TARGET;NAME" "SRCS" ${ARGN})
  if(NOT (TARGET torch_cuda AND CMAKE_CUDA_COMPILER))
    return()
  endif()
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PUBLIC ${TORCH_LIBRARIES})
  set_target_properties(${ARG_NAME} PROPERTIES
    CUDA_ARCHITECTURES "${L2M_CUDA_ARCHITECTURES}" CUDA_STANDARD 17
    POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${ARG_TARGET} PRIVATE ${ARG_NAME})
  target_compile_definitions(${ARG_TARGET} PRIVATE L2M_HAVE_CUDA_KERNELS)
  message(STATUS "l2m: CUDA kernels ${ARG_NAME} (${ARG_SRCS})")
endfunction()

# Torch translation units share one precompiled header (PLATFORM.md: 43 s once, then ~13 s
# instead of ~22 s per TU). Non-torch targets never see it.
function(l2m_use_torch_pch target)
  if(L2M_USE_PCH)
    if(TARGET l2m_torch_pch)
      target_precompile_headers(${target} REUSE_FROM l2m_torch_pch)
    endif()
  endif()
endfunction()

# l2m_add_test(NAME name SRCS ... LINK_LIBS ... [LABELS ...] [TORCH_PCH] [TIMEOUT s])
# One ctest entry per test binary: each LibTorch process costs ~1 s to start (PLATFORM.md).
function(l2m_add_test)
  cmake_parse_arguments(ARG "TORCH_PCH" "NAME;TIMEOUT" "SRCS;LINK_LIBS;LABELS" ${ARGN})
  if(NOT L2M_BUILD_TESTS)
    return()
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LINK_LIBS} l2m_test_main)
  if(ARG_TORCH_PCH)
    l2m_use_torch_pch(${ARG_NAME})
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "L2M_SHARED_DIR=${L2M_SHARED_DIR};L2M_BINARY_DIR=${CMAKE_BINARY_DIR}")
endfunction()
