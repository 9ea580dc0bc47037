//! The types a family uses to translate another library's tensor names (torchvision's) into
//! its own (timm's). They live below the families, so a family file never imports
//! [`crate::weights`], which needs [`crate::model::Model`] above the families.

/// A family's translation of one tensor name from another library's layout (torchvision's) to
/// timm's: the timm name, and the timm shape where it differs (same elements, e.g. torchvision
/// ConvNeXt's layer scale [C, 1, 1] is timm's `gamma` [C]). `None` leaves the name alone.
pub(crate) type Translation<'a> =
    Box<dyn Fn(&str, &[usize]) -> Option<(String, Option<Vec<usize>>)> + 'a>;

/// A rename table of module prefixes (`features.3.block.1.0.` -> `blocks.1.0.conv_dw.`) or full
/// names; the longest matching prefix wins.
#[derive(Default)]
pub(crate) struct PrefixMap(Vec<(String, String)>);

impl PrefixMap {
    pub(crate) fn add(&mut self, from: impl Into<String>, to: impl Into<String>) {
        self.0.push((from.into(), to.into()));
    }

    pub(crate) fn map(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .filter(|(from, _)| name.starts_with(from.as_str()))
            .max_by_key(|(from, _)| from.len())
            .map(|(from, to)| format!("{to}{}", &name[from.len()..]))
    }
}
