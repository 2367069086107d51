//! 8-bit interleaved images with an explicit channel order and row stride.
//!
//! "The engine's frame type states its channel order; conversions happen once" (ARCHITECTURE): the
//! OpenCV code of IP_LAP works on BGR (spec §1.10), but a GStreamer frame may be RGBx, BGRA, ... .
//! Rather than converting whole frames, every primitive here reads and writes the B, G and R bytes
//! through [`ChannelOrder::bgr_offsets`], so a mapped video frame (borrowed slice + stride) can be
//! wrapped in an [`ImageRef`] / [`ImageMut`] without copying and pasted into in place. Padding and
//! alpha/x bytes are never written. Planar formats (I420, NV12) would be a separate type made of
//! per-plane [`ChannelOrder::Gray`] views; nothing here assumes a single plane beyond this type.

use super::ImageError;

/// Byte layout of one pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelOrder {
    /// One 8-bit channel (masks, single planes).
    Gray,
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Rgba,
    Bgra,
    Argb,
    Abgr,
}

impl ChannelOrder {
    /// Bytes per pixel.
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            ChannelOrder::Gray => 1,
            ChannelOrder::Rgb | ChannelOrder::Bgr => 3,
            _ => 4,
        }
    }

    /// Byte offsets of the B, G and R channels inside a pixel (`None` for [`ChannelOrder::Gray`]).
    pub const fn bgr_offsets(self) -> Option<[usize; 3]> {
        match self {
            ChannelOrder::Gray => None,
            ChannelOrder::Rgb | ChannelOrder::Rgbx | ChannelOrder::Rgba => Some([2, 1, 0]),
            ChannelOrder::Bgr | ChannelOrder::Bgrx | ChannelOrder::Bgra => Some([0, 1, 2]),
            ChannelOrder::Xrgb | ChannelOrder::Argb => Some([3, 2, 1]),
            ChannelOrder::Xbgr | ChannelOrder::Abgr => Some([1, 2, 3]),
        }
    }
}

/// An axis-aligned pixel rectangle: columns `x..x + width`, rows `y..y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Rect {
    pub const fn new(x: usize, y: usize, width: usize, height: usize) -> Self {
        Rect {
            x,
            y,
            width,
            height,
        }
    }
    pub const fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }
    /// Whether the rectangle lies inside a `width` x `height` image.
    pub const fn fits_in(&self, width: usize, height: usize) -> bool {
        self.x <= width
            && self.y <= height
            && self.width <= width - self.x
            && self.height <= height - self.y
    }
}

/// Checks that `len` bytes can hold the described image (last row need not be padded).
fn check_layout(
    len: usize,
    width: usize,
    height: usize,
    stride: usize,
    order: ChannelOrder,
) -> Result<(), ImageError> {
    let row = width
        .checked_mul(order.bytes_per_pixel())
        .ok_or(ImageError::Layout("row size overflows"))?;
    if stride < row {
        return Err(ImageError::Layout("stride is smaller than a row"));
    }
    if height > 0 {
        let need = (height - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(row))
            .ok_or(ImageError::Layout("image size overflows"))?;
        if len < need {
            return Err(ImageError::Layout(
                "buffer is too small for width, height and stride",
            ));
        }
    }
    Ok(())
}

/// A borrowed, read-only image.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
    order: ChannelOrder,
}

/// A borrowed, writable image (e.g. a mapped, writable video frame).
#[derive(Debug)]
pub struct ImageMut<'a> {
    data: &'a mut [u8],
    width: usize,
    height: usize,
    stride: usize,
    order: ChannelOrder,
}

/// An owned, packed image (stride = width x bytes per pixel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    data: Vec<u8>,
    width: usize,
    height: usize,
    order: ChannelOrder,
}

macro_rules! accessors {
    () => {
        pub fn width(&self) -> usize {
            self.width
        }
        pub fn height(&self) -> usize {
            self.height
        }
        /// Bytes from the start of one row to the start of the next.
        pub fn stride(&self) -> usize {
            self.stride
        }
        pub fn order(&self) -> ChannelOrder {
            self.order
        }
        /// The bytes of row `y` (`width x bytes_per_pixel`, no padding). Panics if `y >= height`.
        pub fn row(&self, y: usize) -> &[u8] {
            let start = y * self.stride;
            &self.data[start..start + self.width * self.order.bytes_per_pixel()]
        }
    };
}

impl<'a> ImageRef<'a> {
    /// Wraps `data` after checking that it can hold the described image.
    pub fn new(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
        order: ChannelOrder,
    ) -> Result<Self, ImageError> {
        check_layout(data.len(), width, height, stride, order)?;
        Ok(ImageRef {
            data,
            width,
            height,
            stride,
            order,
        })
    }
    /// A packed image (stride = width x bytes per pixel).
    pub fn packed(
        data: &'a [u8],
        width: usize,
        height: usize,
        order: ChannelOrder,
    ) -> Result<Self, ImageError> {
        Self::new(data, width, height, width * order.bytes_per_pixel(), order)
    }
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    accessors!();
}

impl<'a> ImageMut<'a> {
    /// Wraps `data` after checking that it can hold the described image.
    pub fn new(
        data: &'a mut [u8],
        width: usize,
        height: usize,
        stride: usize,
        order: ChannelOrder,
    ) -> Result<Self, ImageError> {
        check_layout(data.len(), width, height, stride, order)?;
        Ok(ImageMut {
            data,
            width,
            height,
            stride,
            order,
        })
    }
    /// A packed image (stride = width x bytes per pixel).
    pub fn packed(
        data: &'a mut [u8],
        width: usize,
        height: usize,
        order: ChannelOrder,
    ) -> Result<Self, ImageError> {
        Self::new(data, width, height, width * order.bytes_per_pixel(), order)
    }
    pub fn as_ref(&self) -> ImageRef<'_> {
        ImageRef {
            data: self.data,
            width: self.width,
            height: self.height,
            stride: self.stride,
            order: self.order,
        }
    }
    /// All the bytes, rows `stride` apart (the last row need not be padded).
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.data
    }
    /// The writable bytes of row `y`. Panics if `y >= height`.
    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let start = y * self.stride;
        let len = self.width * self.order.bytes_per_pixel();
        &mut self.data[start..start + len]
    }
    accessors!();
}

impl Default for Image {
    /// An empty BGR image (scratch space to be [`Image::reset`]).
    fn default() -> Self {
        Image::new(0, 0, ChannelOrder::Bgr)
    }
}

impl Image {
    /// A zeroed image.
    pub fn new(width: usize, height: usize, order: ChannelOrder) -> Self {
        Image {
            data: vec![0; width * height * order.bytes_per_pixel()],
            width,
            height,
            order,
        }
    }
    /// Takes ownership of packed pixel data.
    pub fn from_vec(
        data: Vec<u8>,
        width: usize,
        height: usize,
        order: ChannelOrder,
    ) -> Result<Self, ImageError> {
        if Some(data.len())
            != width
                .checked_mul(height)
                .and_then(|n| n.checked_mul(order.bytes_per_pixel()))
        {
            return Err(ImageError::Layout(
                "owned image data must be exactly width x height x bpp",
            ));
        }
        Ok(Image {
            data,
            width,
            height,
            order,
        })
    }
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }
    pub fn order(&self) -> ChannelOrder {
        self.order
    }
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }
    pub fn view(&self) -> ImageRef<'_> {
        ImageRef {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.width * self.order.bytes_per_pixel(),
            order: self.order,
        }
    }
    pub fn view_mut(&mut self) -> ImageMut<'_> {
        let stride = self.width * self.order.bytes_per_pixel();
        ImageMut {
            data: &mut self.data,
            width: self.width,
            height: self.height,
            stride,
            order: self.order,
        }
    }
    /// Resizes (and zeroes) the buffer for reuse as scratch space without reallocating when it fits.
    pub(crate) fn reset(&mut self, width: usize, height: usize, order: ChannelOrder) {
        self.data.clear();
        self.data
            .resize(width * height * order.bytes_per_pixel(), 0);
        self.width = width;
        self.height = height;
        self.order = order;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_checked() {
        let buf = [0u8; 10];
        // Stride shorter than a row.
        assert!(ImageRef::new(&buf, 2, 1, 5, ChannelOrder::Bgr).is_err());
        // 1x3 RGB with stride 4 needs 4 + 4 + 3 = 11 bytes.
        assert!(ImageRef::new(&buf, 1, 3, 4, ChannelOrder::Rgb).is_err());
        assert!(ImageRef::new(&buf, 1, 3, 3, ChannelOrder::Rgb).is_ok());
        // The last row needs no padding: 2 x 4 + 2 = 10.
        assert!(ImageRef::new(&buf, 2, 3, 4, ChannelOrder::Gray).is_ok());
    }

    #[test]
    fn offsets_match_names() {
        assert_eq!(ChannelOrder::Argb.bgr_offsets(), Some([3, 2, 1]));
        assert_eq!(ChannelOrder::Bgrx.bytes_per_pixel(), 4);
        assert!(Rect::new(3, 0, 2, 1).fits_in(5, 1));
        assert!(!Rect::new(4, 0, 2, 1).fits_in(5, 1));
    }
}
