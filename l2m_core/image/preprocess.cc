#include "l2m_core/image/preprocess.h"

#include "l2m_core/image/resize.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/image/preprocess_cuda.h"
#endif

#include <torch/torch.h>

#include <stdexcept>

namespace l2m {

at::Tensor ResizeBicubicPil(const at::Tensor& image_hwc, int h, int w) {
  if (image_hwc.dim() != 3 || image_hwc.scalar_type() != at::kByte ||
      !image_hwc.device().is_cpu()) {
    throw std::invalid_argument(
        "ResizeBicubicPil: expected a CPU uint8 (H, W, C) tensor");
  }
  const at::Tensor src = image_hwc.contiguous();
  const int channels = static_cast<int>(src.size(2));
  at::Tensor dst = torch::empty({h, w, channels}, torch::kUInt8);
  ResizeBicubicPil(src.data_ptr<uint8_t>(),
                   static_cast<int>(src.size(0)),
                   static_cast<int>(src.size(1)),
                   channels,
                   h,
                   w,
                   dst.data_ptr<uint8_t>());
  return dst;
}

bool PreprocessForMatcherRunsOnCuda() {
#ifdef L2M_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

at::Tensor PreprocessForMatcher(const at::Tensor& rgb,
                                int h,
                                int w,
                                bool normalize) {
  if (rgb.dim() != 3 || rgb.size(2) != 3) {
    throw std::invalid_argument(
        "PreprocessForMatcher: expected an (H, W, 3) RGB tensor");
  }
  if (rgb.is_cuda()) {
#ifdef L2M_HAVE_CUDA_KERNELS
    if (rgb.scalar_type() != at::kByte) {
      throw std::invalid_argument(
          "PreprocessForMatcher: expected a uint8 image");
    }
    return internal::PreprocessForMatcherCuda(
        rgb.contiguous(),
        internal::ComputePilTaps(
            static_cast<int>(rgb.size(0)), h, PilFilter::kBicubic),
        internal::ComputePilTaps(
            static_cast<int>(rgb.size(1)), w, PilFilter::kBicubic),
        h,
        w,
        normalize);
#else
    throw std::invalid_argument(
        "PreprocessForMatcher: l2m was built without its CUDA kernels; "
        "pass the image on the CPU");
#endif
  }
  const at::Tensor resized = ResizeBicubicPil(rgb, h, w);
  // float32 division by 255 (not multiplication by 1/255): the reference does
  // `np.float32 array /= 255.0`, which rounds differently in the last bit.
  at::Tensor x = resized.permute({2, 0, 1}).to(torch::kFloat32).div_(255.0);
  if (normalize) {
    // torchvision Normalize: float32 mean/std tensors, sub_ then div_.
    // The constants are Python floats (double) cast to float32.
    const at::Tensor mean =
        torch::tensor({0.485, 0.456, 0.406}, torch::kFloat64)
            .to(torch::kFloat32)
            .view({3, 1, 1});
    const at::Tensor std = torch::tensor({0.229, 0.224, 0.225}, torch::kFloat64)
                               .to(torch::kFloat32)
                               .view({3, 1, 1});
    x.sub_(mean).div_(std);
  }
  return x.contiguous().unsqueeze(0);
}

MatcherImageInputs PreprocessForMatcherPasses(const at::Tensor& rgb,
                                              int coarse_h,
                                              int coarse_w,
                                              int up_h,
                                              int up_w,
                                              bool normalize) {
  MatcherImageInputs in;
  in.coarse = PreprocessForMatcher(rgb, coarse_h, coarse_w, normalize);
  if (up_h > 0) in.upsample = PreprocessForMatcher(rgb, up_h, up_w, normalize);
  return in;
}

at::Tensor PreprocessForMatcher(
    const uint8_t* rgb, int src_h, int src_w, int h, int w, bool normalize) {
  if (rgb == nullptr || src_h <= 0 || src_w <= 0) {
    throw std::invalid_argument("PreprocessForMatcher: empty image");
  }
  // from_blob does not copy; ResizeBicubicPil only reads it.
  const at::Tensor view = torch::from_blob(
      const_cast<uint8_t*>(rgb), {src_h, src_w, 3}, torch::kUInt8);
  return PreprocessForMatcher(view, h, w, normalize);
}

}  // namespace l2m
