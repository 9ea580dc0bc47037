//! ImageNet-1k class names, in the index order of timm/torchvision classifiers (the list
//! torchvision ships as `weights.meta["categories"]`).

static NAMES: &str = include_str!("../assets/imagenet_classes.txt");

/// The 1000 ImageNet-1k class names, index = logit position.
pub fn imagenet_class_names() -> Vec<String> {
    NAMES.lines().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousand_names_in_torchvision_order() {
        let names = super::imagenet_class_names();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[0], "tench");
        assert_eq!(names[207], "golden retriever");
        assert_eq!(names[999], "toilet tissue");
    }
}
