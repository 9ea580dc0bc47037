/// An 8-bit image, height × width × channels, row-major (HWC), as decoders produce it.
///
/// `channels` is 1 (grayscale) or 3 (RGB). Decoded files are always RGB; the MNIST family and
/// CIFAR readers produce 1 and 3 channels respectively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Image {
    pub fn new(height: usize, width: usize, channels: usize, data: Vec<u8>) -> Self {
        assert_eq!(
            data.len(),
            height * width * channels,
            "Image buffer does not match its shape"
        );
        Image {
            height,
            width,
            channels,
            data,
        }
    }

    pub fn zeros(height: usize, width: usize, channels: usize) -> Self {
        Image {
            height,
            width,
            channels,
            data: vec![0; height * width * channels],
        }
    }

    #[inline]
    pub fn pixel(&self, y: usize, x: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    #[inline]
    pub fn set_pixel(&mut self, y: usize, x: usize, c: usize, v: u8) {
        let w = self.width;
        let ch = self.channels;
        self.data[(y * w + x) * ch + c] = v;
    }

    /// An image of the same shape holding `data` (which must have the same length).
    pub fn with_data(&self, data: Vec<u8>) -> Image {
        Image::new(self.height, self.width, self.channels, data)
    }

    /// Grayscale expanded to RGB by copying the channel; RGB returned as is.
    pub fn to_rgb(&self) -> Image {
        match self.channels {
            3 => self.clone(),
            1 => Image {
                height: self.height,
                width: self.width,
                channels: 3,
                data: self.data.iter().flat_map(|&v| [v, v, v]).collect(),
            },
            c => panic!("Image::to_rgb: unsupported channel count {c}"),
        }
    }
}
