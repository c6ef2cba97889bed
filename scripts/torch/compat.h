// compat.h: makes gotch v0.7.0's libtch (written for libtorch 1.11) compile
// against Debian's libtorch 1.13.1 without editing the module.
//
// diffinv's build forces this header into every C++ compile of the cgo
// packages (CGO_CXXFLAGS="... -include <abs path>/compat-<hash>.h", see
// scripts/torch/setup.sh). It does two things, both inside namespace torch
// (libtch calls torch::op, which resolves to at::op through torch's
// `using namespace at;`):
//
//  1. Ops removed in 1.13 (31 call sites) become variadic templates that
//     throw std::runtime_error. libtch's PROTECT macro turns the throw into
//     torch_last_err, so calling one from Go gives an error, never a crash.
//  2. Ops whose signature changed (7 call sites) get the 1.11 overload back,
//     forwarding to the 1.13 op with the old semantics. A using-declaration
//     keeps at::'s own overloads visible, since a declaration in namespace
//     torch hides the names reached through the using-directive.
//
// diffinv itself uses none of these ops.
#pragma once
#ifdef __cplusplus
#include <array>
#include <stdexcept>
#include <string>
#include <tuple>

#include <torch/torch.h>

namespace diffinv_compat {
[[noreturn]] inline void removed(const char* name) {
  throw std::runtime_error(std::string("torch::") + name +
                           " was removed in libtorch 1.13 (diffinv compat.h: not available)");
}
using Tensor2 = std::tuple<at::Tensor, at::Tensor>;
using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
}  // namespace diffinv_compat

#define DIFFINV_REMOVED(name, ret)            \
  template <typename... A>                    \
  ret name(A&&...) {                          \
    diffinv_compat::removed(#name);           \
  }

namespace torch {

// 1. Removed ops: one tensor out.
DIFFINV_REMOVED(_cat, at::Tensor)
DIFFINV_REMOVED(_cat_out, at::Tensor)
DIFFINV_REMOVED(_det_lu_based_helper_backward_helper, at::Tensor)
DIFFINV_REMOVED(_linalg_inv_out_helper_, at::Tensor)
DIFFINV_REMOVED(_s_where, at::Tensor)
DIFFINV_REMOVED(binary_cross_entropy_with_logits_backward, at::Tensor)
DIFFINV_REMOVED(col2im_backward, at::Tensor)
DIFFINV_REMOVED(col2im_backward_out, at::Tensor)
DIFFINV_REMOVED(im2col_backward, at::Tensor)
DIFFINV_REMOVED(im2col_backward_out, at::Tensor)
DIFFINV_REMOVED(kl_div_backward, at::Tensor)
DIFFINV_REMOVED(l1_loss_backward, at::Tensor)
DIFFINV_REMOVED(l1_loss_backward_out, at::Tensor)
DIFFINV_REMOVED(l1_loss_out, at::Tensor)
DIFFINV_REMOVED(matrix_rank, at::Tensor)
DIFFINV_REMOVED(max_unpool2d_backward, at::Tensor)
DIFFINV_REMOVED(max_unpool2d_backward_out, at::Tensor)
DIFFINV_REMOVED(max_unpool3d_backward, at::Tensor)
DIFFINV_REMOVED(max_unpool3d_backward_out, at::Tensor)

// 1. Removed ops: two or three tensors out (libtch reads std::get<i>).
DIFFINV_REMOVED(_det_lu_based_helper, diffinv_compat::Tensor3)
DIFFINV_REMOVED(_linalg_qr_helper, diffinv_compat::Tensor2)
DIFFINV_REMOVED(_solve_helper, diffinv_compat::Tensor2)
DIFFINV_REMOVED(_weight_norm_cuda_interface, diffinv_compat::Tensor2)
DIFFINV_REMOVED(_weight_norm_cuda_interface_backward, diffinv_compat::Tensor2)
DIFFINV_REMOVED(eig, diffinv_compat::Tensor2)
DIFFINV_REMOVED(eig_out, diffinv_compat::Tensor2)
DIFFINV_REMOVED(lstsq, diffinv_compat::Tensor2)
DIFFINV_REMOVED(lstsq_out, diffinv_compat::Tensor2)
DIFFINV_REMOVED(solve, diffinv_compat::Tensor2)
DIFFINV_REMOVED(solve_out, diffinv_compat::Tensor2)

// 2. Changed signatures: the 1.11 overloads.

using at::arange_out;
// arange.start_out(start, end): 1.13 only has (out, end) and (out, start, end, step).
inline at::Tensor& arange_out(at::Tensor& out, const at::Scalar& start, const at::Scalar& end) {
  return at::arange_out(out, start, end, 1);
}

using at::bernoulli_out;
// bernoulli.out(self, generator): 1.13 adds a float_out overload with a
// default p, so (out, self) is ambiguous; the non-const self binds better.
inline at::Tensor& bernoulli_out(at::Tensor& out, at::Tensor& self) {
  return at::bernoulli_out(out, self, c10::optional<at::Generator>());
}

using at::normal_out;
// normal.Tensor_float_out(mean, std): 1.13 adds normal.out(self, mean, std).
inline at::Tensor& normal_out(at::Tensor& out, at::Tensor& mean, double& std) {
  return at::normal_out(out, static_cast<const at::Tensor&>(mean), std,
                        c10::optional<at::Generator>());
}

using at::nansum;
// nansum(self, dtype): 1.13 folds it into nansum(self, dim, keepdim, dtype).
inline at::Tensor nansum(const at::Tensor& self, at::ScalarType dtype) {
  return at::nansum(self, c10::nullopt, false, dtype);
}

using at::grid_sampler_3d_backward;
// 1.13 adds output_mask; 1.11 computed both gradients.
inline std::tuple<at::Tensor, at::Tensor> grid_sampler_3d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& grid,
    int64_t interpolation_mode, int64_t padding_mode, bool align_corners) {
  return at::grid_sampler_3d_backward(grad_output, input, grid, interpolation_mode,
                                      padding_mode, align_corners, std::array<bool, 2>{true, true});
}

using at::segment_reduce;
// 1.13 adds offsets after indices and makes initial optional.
inline at::Tensor segment_reduce(const at::Tensor& data, c10::string_view reduce,
                                 const c10::optional<at::Tensor>& lengths,
                                 const c10::optional<at::Tensor>& indices, int64_t axis,
                                 bool unsafe, const at::Scalar& initial) {
  return at::segment_reduce(data, reduce, lengths, indices, c10::nullopt, axis, unsafe,
                            c10::optional<at::Scalar>(initial));
}

using at::_segment_reduce_backward;
// 1.13 adds offsets after lengths and a trailing initial.
inline at::Tensor _segment_reduce_backward(const at::Tensor& grad, const at::Tensor& output,
                                           const at::Tensor& data, c10::string_view reduce,
                                           const c10::optional<at::Tensor>& lengths,
                                           int64_t axis) {
  return at::_segment_reduce_backward(grad, output, data, reduce, lengths, c10::nullopt, axis,
                                      c10::nullopt);
}

}  // namespace torch

#undef DIFFINV_REMOVED
#endif  // __cplusplus
