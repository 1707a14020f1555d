#pragma once

// Minimal NumPy .npy / .npz I/O: the formats the reference L2M data generator
// reads and writes (depth maps, intrinsics, poses) and Middlebury/Depth
// Anything tools ship. Only little-endian, C-order arrays.

#include <Eigen/Core>
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace l2m {

// Serialises a Mat as .npy bytes: CV_8U -> |u1, CV_16U -> <u2, CV_32F -> <f4,
// CV_64F -> <f8; shape (rows, cols) for one channel, (rows, cols, channels)
// otherwise.
std::string EncodeNpy(const cv::Mat& array);
// Writes EncodeNpy(array) atomically to `path`.
void WriteNpy(const std::string& path, const cv::Mat& array);
// Small matrices (intrinsics, poses) as float32, like the reference's torch
// tensors saved with np.save.
void WriteNpy(const std::string& path, const Eigen::MatrixXd& matrix);

// Parses .npy bytes into a Mat of the stored type (1-D arrays become one row;
// a trailing dimension of size 1..4 becomes channels). `what` names the
// source in errors.
cv::Mat DecodeNpy(const std::string& bytes, const std::string& what);
cv::Mat ReadNpy(const std::string& path);

// Reads the array `name` (or the first one when empty) of an .npz archive
// (stored or deflated entries, as np.savez / np.savez_compressed write).
cv::Mat ReadNpz(const std::string& path, const std::string& name = "");

}  // namespace l2m
